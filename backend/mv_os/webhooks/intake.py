"""The webhook request path's only database work: archive the exact bytes durably, with a group commit.

Each request thread hands its body to `archive()`.  The first to find no write in progress leads: it writes
every body queued so far in ONE multi-row INSERT on the process's own autocommit connection, so concurrent
requests share one commit (and its fsync); the others wait for that commit.  Nobody is answered before the
commit that holds their body.  Each waiter is woken exactly once: committed, or handed the lead.

Exactly once: `webhook_payloads.sha256` is unique; identical bodies within a group are merged and rows go in
hash order (no deadlock between workers); a re-delivery bumps `deliveries` and is reported as a duplicate.

The statement is prepared once per group size and sent through psycopg's low-level libpq wrapper with
asynchronous calls and psycopg's own wait, so it is cheap on the hottest path and cooperative under gevent.
If the write fails, every request of the group gets the error (a 503: Meta delivers again)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import time
from dataclasses import dataclass

import psycopg
from peewee import OperationalError
from psycopg import generators
from psycopg.pq import ExecStatus

from mv_os.db import database
from mv_os.models import utcnow

MAX_GROUP = 64


def insert_sql(rows: int) -> bytes:
    """The group INSERT for `rows` distinct bodies: $1 is the time, then (sha256, body, deliveries) per row."""
    values = ", ".join(
        f"(${3 * i + 2}::text, ${3 * i + 3}::bytea, length(${3 * i + 3}::bytea), ${3 * i + 4}::int, "
        "$1::timestamptz, $1::timestamptz, NULL)"
        for i in range(rows)
    )
    # Only numbered placeholders go into the text (built from an int): no data, nothing to inject.
    return (
        "INSERT INTO webhook_payloads (sha256, body, size, deliveries, first_received_at, last_received_at, "  # noqa: S608
        "processed_at) "
        f"VALUES {values} "
        "ON CONFLICT (sha256) DO UPDATE SET deliveries = webhook_payloads.deliveries + EXCLUDED.deliveries, "
        "last_received_at = EXCLUDED.last_received_at "
        "RETURNING sha256, id, (xmax = 0) AS inserted"
    ).encode()


@dataclass(slots=True)
class Archived:
    payload_id: int
    duplicate: bool


class _Pending:
    __slots__ = ("body", "digest", "done", "error", "result", "wake")

    def __init__(self, body: bytes):
        self.body = body
        self.digest = hashlib.sha256(body).hexdigest()
        self.done = False
        self.result: Archived | None = None
        self.error: BaseException | None = None
        self.wake = threading.Lock()  # held until this body's thread is woken (committed, or its turn to lead)
        self.wake.acquire()


class GroupCommit:
    """One per process (gunicorn worker): module-level `archive()` uses the shared instance."""

    def __init__(self):
        self._lock = threading.Lock()  # guards _queue and _writing (never held during a write)
        self._queue: list[_Pending] = []
        self._writing = False
        self._conn: psycopg.Connection | None = None
        self._conn_key: tuple | None = None
        self._prepared: set[int] = set()  # group sizes prepared on the current connection
        self.groups = 0  # statistics (benchmarks, the worker's exit line): commits, bodies, seconds writing
        self.bodies = 0
        self.write_seconds = 0.0

    def archive(self, body: bytes) -> Archived:
        item = _Pending(body)
        with self._lock:
            self._queue.append(item)
            lead = not self._writing
            self._writing = True
        if not lead:
            item.wake.acquire()  # committed by a leader, or handed the lead
        if not item.done:
            # The leader's body is the oldest queued one, so it is in the group it writes.
            with self._lock:
                group, self._queue = self._queue[:MAX_GROUP], self._queue[MAX_GROUP:]
            self._write(group, leader=item)
            with self._lock:
                if self._queue:
                    self._queue[0].wake.release()  # the oldest waiting body's thread leads the next group
                else:
                    self._writing = False
        if item.error is not None:
            raise item.error
        return item.result

    def _write(self, group: list[_Pending], leader: _Pending) -> None:
        started = time.perf_counter()
        try:
            results = self._insert(group)
            for item in group:
                item.result = results[id(item)]
        except BaseException as exc:  # noqa: BLE001 - every request of the group gets it (-> 503), re-raised there
            self.close()
            error = OperationalError(str(exc)) if isinstance(exc, psycopg.Error) else exc
            for item in group:
                item.error = error
        finally:
            for item in group:
                item.done = True
                if item is not leader:
                    item.wake.release()
        self.groups += 1
        self.bodies += len(group)
        self.write_seconds += time.perf_counter() - started

    def _connection(self) -> psycopg.Connection:
        """The intake connection for the database the app is bound to (reopened after fork, rebind, error)."""
        db = database.obj
        key = (os.getpid(), id(db))
        if self._conn is None or self._conn.closed or self._conn_key != key:
            self.close()
            self._conn = psycopg.connect(dbname=db.database, autocommit=True, **db.connect_params)
            self._conn_key = key
            self._prepared = set()
        return self._conn

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and self._conn_key is not None and self._conn_key[0] == os.getpid():
            with contextlib.suppress(Exception):  # a broken connection: nothing left to close
                conn.close()

    def _insert(self, group: list[_Pending]) -> dict[int, Archived]:
        by_digest: dict[str, list[_Pending]] = {}
        for item in group:
            by_digest.setdefault(item.digest, []).append(item)
        digests = sorted(by_digest)  # the same order in every worker: no deadlock on the unique index
        conn = self._connection()
        pgconn = conn.pgconn
        name = b"mv_os_intake_%d" % len(digests)
        if len(digests) not in self._prepared:
            pgconn.send_prepare(name, insert_sql(len(digests)))
            _check(_result(conn), pgconn, ExecStatus.COMMAND_OK)
            self._prepared.add(len(digests))
        params: list[bytes] = [utcnow().isoformat().encode()]
        formats = [0]
        for digest in digests:
            params += [digest.encode(), by_digest[digest][0].body, b"%d" % len(by_digest[digest])]
            formats += [0, 1, 0]  # the body goes as binary bytea, the rest as text
        pgconn.send_query_prepared(name, params, param_formats=formats)
        result = _check(_result(conn), pgconn, ExecStatus.TUPLES_OK)
        results: dict[int, Archived] = {}
        for row in range(result.ntuples):
            digest, payload_id, inserted = (result.get_value(row, col) for col in range(3))
            for position, item in enumerate(by_digest[digest.decode()]):
                # The first copy of a new body is the delivery; identical copies in the same group are duplicates.
                results[id(item)] = Archived(int(payload_id), duplicate=not (inserted == b"t" and position == 0))
        return results


def _result(conn: psycopg.Connection):
    """The result of the statement just sent on `conn`, waited for the way psycopg waits (cooperative under
    gevent; psycopg's C wait, which releases the GIL, otherwise)."""
    results = conn.wait(generators.execute(conn.pgconn))
    if not results:
        raise psycopg.OperationalError("the server sent no result (connection lost)")
    return results[-1]


def _check(result, pgconn, expected):
    """Raise psycopg's error for a failed libpq call (OperationalError when the connection is gone)."""
    if result.status != expected:
        message = (result.error_message or pgconn.error_message or b"unknown error").decode("utf-8", "replace")
        raise psycopg.OperationalError(message.strip())
    return result


_shared = GroupCommit()


def archive(body: bytes) -> Archived:
    """Store `body` durably (grouped with concurrent callers in this process).  Raises on database errors."""
    return _shared.archive(body)


def statistics() -> tuple[int, int]:
    """(groups written, bodies archived) by this process: bodies / groups is the mean group size."""
    return _shared.groups, _shared.bodies


def summary() -> str | None:
    """One line for the log when a worker exits (bodies, commits, bodies and milliseconds per commit); None if
    this process archived nothing."""
    shared = _shared
    if not shared.groups:
        return None
    return (
        f"{shared.bodies} bodies in {shared.groups} commits ({shared.bodies / shared.groups:.1f} per commit, "
        f"{shared.write_seconds / shared.groups * 1000:.2f} ms per commit)"
    )
