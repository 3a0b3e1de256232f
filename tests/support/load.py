"""Helpers for the fault tests: signed single/batched webhook bodies with unique wamids, a threaded load that
records every answer, and a throwaway PostgreSQL server (never the shared test server) that can be stopped."""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import requests

from mv_os.meta.signing import signed_headers
from scripts.bench.payloads import SECRET, body, wamid


@dataclass
class Delivery:
    body: bytes
    wamids: list[str]
    status: int | None = None  # None: no HTTP answer (connection refused/reset)
    started: float = 0.0
    finished: float = 0.0


def make_delivery(run: str, worker: int, seq: int, per_post: int = 1) -> Delivery:
    ids = [wamid(run, worker, seq * per_post + i) for i in range(per_post)]
    return Delivery(body(ids, worker * 100_000 + seq * per_post), ids)


def post(url: str, delivery: Delivery, session: requests.Session | None = None, timeout: float = 15) -> int | None:
    data = delivery.body
    headers = signed_headers(SECRET, data)
    delivery.started = time.monotonic()
    try:
        response = (session or requests).post(url + "/webhooks/whatsapp", data=data, headers=headers, timeout=timeout)
        delivery.status = response.status_code
    except requests.RequestException:
        delivery.status = None
    delivery.finished = time.monotonic()
    return delivery.status


@dataclass
class Load:
    """`threads` clients posting new deliveries back to back until `stop()`; every attempt is kept."""

    url: str
    run: str
    threads: int = 4
    per_post: int = 1
    deliveries: list[Delivery] = field(default_factory=list)

    def __post_init__(self):
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._workers = [threading.Thread(target=self._client, args=(i,), daemon=True) for i in range(self.threads)]

    def _client(self, worker: int) -> None:
        session = requests.Session()
        seq = 0
        while not self._stop.is_set():
            delivery = make_delivery(self.run, worker, seq, self.per_post)
            seq += 1
            post(self.url, delivery, session)
            with self._lock:
                self.deliveries.append(delivery)
            if delivery.status is None:  # refused or cut off (e.g. a server that stopped listening)
                session.close()
                session = requests.Session()
                time.sleep(0.05)

    def wait_for(self, predicate, timeout: float = 10.0) -> None:
        """Poll (every 10 ms) until `predicate(deliveries so far)` holds; fail after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                snapshot = list(self.deliveries)
            if predicate(snapshot):
                return
            assert time.monotonic() < deadline, f"load condition not reached in {timeout}s"
            time.sleep(0.01)

    def start(self) -> Load:
        for w in self._workers:
            w.start()
        return self

    def stop(self, timeout: float = 30) -> list[Delivery]:
        self._stop.set()
        for w in self._workers:
            w.join(timeout)
        assert not any(w.is_alive() for w in self._workers), "a load client is stuck"
        return self.deliveries


def stored_wamids(url: str, run: str) -> dict[str, int]:
    with psycopg.connect(url, autocommit=True) as conn:
        return dict(
            conn.execute(
                "SELECT wamid, count(*) FROM messages WHERE wamid LIKE %s GROUP BY wamid", (f"wamid.BENCH.{run}.%",)
            ).fetchall()
        )


def archived_digests(url: str) -> set[str]:
    """SHA-256 of every archived webhook body (what the request path committed before answering 200)."""
    with psycopg.connect(url, autocommit=True) as conn:
        return {row[0] for row in conn.execute("SELECT sha256 FROM webhook_payloads").fetchall()}


def digest(delivery: Delivery) -> str:
    return hashlib.sha256(delivery.body).hexdigest()


class ThrowawayPostgres:
    """A PostgreSQL server of its own in `data_dir` (pgserver's binaries; as root it runs as the `pgserver`
    user, like pgserver does), so a test can stop and restart it without touching the shared test server."""

    def __init__(self, data_dir: Path):
        import pgserver

        self.data_dir = data_dir
        self.server = pgserver.get_server(data_dir, cleanup_mode="delete")

    def url(self, database: str = "postgres") -> str:
        return self.server.get_uri(database)

    def _pg_ctl(self, *args: str) -> None:
        from pgserver._commands import pg_ctl

        pg_ctl(list(args), pgdata=self.data_dir, user=self.server.system_user, timeout=60)

    def crash(self) -> None:
        """Immediate shutdown: no checkpoint, sessions cut off, like a crash; recovery replays the WAL."""
        self._pg_ctl("-w", "-m", "immediate", "stop")

    def restart(self) -> None:
        self.server.ensure_postgres_running()

    def cleanup(self) -> None:
        self.server.cleanup()
