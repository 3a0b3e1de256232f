"""The webhook processor: parses archived payloads (`processed_at IS NULL`) and stores them through
`messaging.inbound`, behind the request path, in batches.

- One background thread per serving process, started with the worker or by the first webhook.  A batch is
  claimed with `FOR UPDATE SKIP LOCKED` and marked processed in the same transaction as its rows, so any
  number of processors share the queue and a crash mid-batch leaves the batch to the next one.
- It yields to requests: in a storm (more than STORM_RATE webhooks per second) it waits for QUIET seconds
  without a webhook, but never longer than MAX_DEFER; otherwise it starts after CALM_QUIET.
- A failed batch is retried payload by payload; a payload that still fails is marked with
  `processing_error` (kept for a replay) so it cannot block the queue.  A database outage is not such a
  failure: the batch stays queued and the thread retries with back-off.
- `drain()` processes everything queued in the calling thread: tests, the CLI, the benchmark."""

from __future__ import annotations

import logging
import os
import threading
import time

from mv_os.db import database
from mv_os.errors import UNAVAILABLE
from mv_os.messaging import inbound
from mv_os.meta.payload import parse

log = logging.getLogger("mv_os.webhooks.processor")

QUIET = 0.1  # in a storm: seconds without a new webhook before processing starts
CALM_QUIET = 0.005  # otherwise (a message reaches the inbox at once)
STORM_RATE = 50.0  # webhooks per second in this process above which it is a storm
MAX_DEFER = 1.0  # ... but never wait longer than this while webhooks keep coming (one batch per second in a storm)
IDLE_POLL = 5.0  # look for work left by other processes (or a crash) this often
BATCH_PAYLOADS = 256
# A batch's Python work runs between two database calls without a switch, holding a gevent worker's requests:
# keep it to a few milliseconds.
BATCH_BYTES = 64 * 1024


def process_batch(default_phone_number_id: str, limit: int = BATCH_PAYLOADS) -> int:
    """Claim and process one batch of queued payloads.  Returns how many were processed (0: queue empty or
    every queued payload is being processed elsewhere)."""
    if database.obj is None:
        return 0
    try:
        with database.atomic():
            claimed = database.execute_sql(
                "SELECT id, size FROM webhook_payloads WHERE processed_at IS NULL ORDER BY id LIMIT %s "
                "FOR UPDATE SKIP LOCKED",
                (limit,),
            ).fetchall()
            if not claimed:
                return 0
            ids, total = [], 0
            for payload_id, size in claimed:
                if ids and total + size > BATCH_BYTES:
                    break  # the rest stay locked until this commit, then go to the next batch
                ids.append(payload_id)
                total += size
            bodies = database.execute_sql(
                "SELECT id, body FROM webhook_payloads WHERE id = ANY(%s) ORDER BY id", (ids,)
            ).fetchall()
            try:
                with database.atomic():  # a savepoint: a failure here leaves the claim intact
                    parsed = [(int(pid), parse(bytes(body), default_phone_number_id)) for pid, body in bodies]
                    counts = inbound.store(parsed)
                    _mark(ids)
            except UNAVAILABLE:
                raise
            except Exception:
                log.exception("webhook batch of %d payloads failed; processing them one by one", len(ids))
                counts = None
                for payload_id, body in bodies:
                    _process_alone(int(payload_id), bytes(body), default_phone_number_id)
            if counts is not None:
                log.info(  # one line per batch (not per request): what the runbooks look for
                    "processed %d webhook payloads: %s",
                    len(ids),
                    " ".join(f"{k}={v}" for k, v in counts.items()),
                )
            return len(ids)
    finally:
        _release()


def _release() -> None:
    """Give this thread's connection back to the pool (a broken one is discarded)."""
    try:
        if not database.is_closed():
            database.close()
    except Exception:  # noqa: BLE001 - a dead connection: nothing to give back
        database.obj._state.reset()


def _process_alone(payload_id: int, body: bytes, default_phone_number_id: str) -> None:
    try:
        with database.atomic():
            inbound.store([(payload_id, parse(body, default_phone_number_id))])
            _mark([payload_id])
    except UNAVAILABLE:
        raise
    except Exception as exc:
        log.exception("webhook payload %d could not be processed; kept with processing_error", payload_id)
        _mark([payload_id], error=f"{type(exc).__name__}: {str(exc)[:500]}")


def _mark(ids: list[int], error: str | None = None) -> None:
    database.execute_sql(
        "UPDATE webhook_payloads SET processed_at = now(), processing_error = %s WHERE id = ANY(%s)", (error, ids)
    )


def pending() -> int:
    """Payloads not processed yet (including those in a batch another processor has not committed)."""
    try:
        return database.execute_sql("SELECT count(*) FROM webhook_payloads WHERE processed_at IS NULL").fetchone()[0]
    finally:
        _release()


def queue_status(examples: int = 5) -> dict:
    """For operators (`flask webhooks status`): queue depth, oldest queued age, failed payloads."""
    try:
        queued, oldest = database.execute_sql(
            "SELECT count(*), EXTRACT(EPOCH FROM now() - min(first_received_at)) FROM webhook_payloads "
            "WHERE processed_at IS NULL"
        ).fetchone()
        failed = database.execute_sql(
            "SELECT count(*) FROM webhook_payloads WHERE processing_error IS NOT NULL"
        ).fetchone()[0]
        failed_examples = database.execute_sql(
            "SELECT id, processing_error FROM webhook_payloads WHERE processing_error IS NOT NULL "
            "ORDER BY id DESC LIMIT %s",
            (examples,),
        ).fetchall()
    finally:
        _release()
    return {
        "queued": queued,
        "oldest_queued_s": float(oldest or 0),
        "failed": failed,
        "failed_examples": failed_examples,
    }


def requeue_failed() -> int:
    """Put the payloads that could not be processed back in the queue.  Returns how many."""
    try:
        with database.atomic():
            return database.execute_sql(
                "UPDATE webhook_payloads SET processed_at = NULL, processing_error = NULL "
                "WHERE processing_error IS NOT NULL"
            ).rowcount
    finally:
        _release()


class Processor:
    """The process's processor thread (module-level `shared`)."""

    def __init__(self):
        self.autostart = True  # `arrived()` starts the thread; the test suite turns this off for in-process apps
        self.default_phone_number_id = ""
        self.last_arrival = 0.0
        self.arrivals = 0  # webhooks archived by this process (the arrival rate tells a storm from calm)
        self._rate_mark = (0, time.monotonic())
        self._wake = threading.Event()
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._stopping = False

    def ensure_started(self, default_phone_number_id: str) -> None:
        self.default_phone_number_id = default_phone_number_id
        if self._pid == os.getpid() and self._thread is not None and self._thread.is_alive():
            return
        with self._start_lock:
            if self._pid == os.getpid() and self._thread is not None and self._thread.is_alive():
                return
            self._stopping = False
            self._wake = threading.Event()
            self._wake.set()  # look for a backlog right away (e.g. left by a crash)
            self._thread = threading.Thread(target=self._run, name="mv-os-webhook-processor", daemon=True)
            self._pid = os.getpid()
            self._thread.start()

    def arrived(self, default_phone_number_id: str) -> None:
        """A payload was archived: process it soon (starting the thread in this process if needed, so any
        WSGI server works, not only gunicorn with gunicorn.conf.py's hook)."""
        if self.autostart:
            self.ensure_started(default_phone_number_id)
        self.last_arrival = time.monotonic()
        self.arrivals += 1
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        """Finish the batch in progress (bounded by `timeout`) and stop.  Unfinished work stays queued."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None and self._pid == os.getpid():
            self._thread.join(timeout)

    def _yield_to_requests(self) -> None:
        now = time.monotonic()
        count, since = self._rate_mark
        rate = (self.arrivals - count) / max(now - since, 1e-3)
        self._rate_mark = (self.arrivals, now)
        quiet = QUIET if rate > STORM_RATE else CALM_QUIET
        deadline = now + MAX_DEFER
        while not self._stopping and time.monotonic() - self.last_arrival < quiet and time.monotonic() < deadline:
            time.sleep(quiet)

    def _run(self) -> None:
        backoff = 0.0
        while not self._stopping:
            self._wake.wait(IDLE_POLL if backoff == 0 else backoff)
            self._wake.clear()
            try:
                while not self._stopping:
                    self._yield_to_requests()
                    if self._stopping or not process_batch(self.default_phone_number_id):
                        break
                    time.sleep(0)  # a switch between batches (gevent: the requests waiting for this worker)
                if backoff:
                    log.info("webhook processor: database available again")
                backoff = 0.0
            except UNAVAILABLE as exc:
                if not backoff:
                    log.warning("webhook processor: database unavailable (%s); retrying", type(exc).__name__)
                backoff = min(max(backoff * 2, 0.25), 5.0)
            except Exception:  # never let the thread die: the queue would stall
                log.exception("webhook processor: unexpected error; retrying")
                backoff = min(max(backoff * 2, 0.25), 5.0)


shared = Processor()


def drain(default_phone_number_id: str, timeout: float = 30.0) -> None:
    """Process every queued payload now, in this thread, and wait until none is left (other processors'
    batches included).  Raises TimeoutError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        while process_batch(default_phone_number_id):
            pass
        if pending() == 0:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"webhook payloads still queued after {timeout:.0f}s")
        time.sleep(0.01)
