"""The servers a benchmark run measures: the bench database (fresh, migrated, seeded with contacts), gunicorn
started with gunicorn.conf.py on 127.0.0.1, and the database checks after the load."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from scripts.bench.metering import Topology
from scripts.bench.payloads import CONTACTS

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "artifacts" / "bench"
BENCH_DB = "mv_os_bench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 30.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early ({proc.returncode})")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1) as response:  # noqa: S310 - http://127.0.0.1 only
                if response.status == 200:
                    return time.monotonic() - started
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer /healthz within {timeout}s")


def stop(proc: subprocess.Popen, timeout: float = 30.0) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def drop_database(url: str) -> None:
    """Drop the bench database and checkpoint, so a run leaves no gigabytes of rows and WAL behind."""
    import psycopg

    from mv_os.localdb import drop_database as drop
    from mv_os.localdb import with_database

    admin = with_database(url, "postgres")
    drop(admin, BENCH_DB)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("CHECKPOINT")


def prepare_database(url: str | None) -> str:
    from mv_os.localdb import STATE_DIR, ensure_database, server_url, with_database

    admin = with_database(url, "postgres") if url else server_url(STATE_DIR / "pgdata")
    bench_url = ensure_database(admin, BENCH_DB, recreate=True)

    from mv_os import create_app, db
    from mv_os.settings import Settings

    app = create_app(Settings(database_url=bench_url, log_level="WARNING"))
    with app.app_context():
        db.migrate()
    db.database.obj.close_all()
    # Steady state, as in production: the senders are known contacts (a reply storm answers a broadcast), and
    # the planner has statistics (a never-analyzed table gets sequential scans until autovacuum runs).
    import psycopg

    with psycopg.connect(bench_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO contacts (wa_id, profile_name, created_at, updated_at) "
            "SELECT '49151' || lpad(g::text, 8, '0'), 'Bench Kontakt ' || g || %s, now(), now() "
            "FROM generate_series(0, %s - 1) AS g",
            (" \u00fc", CONTACTS),
        )
        conn.execute("ANALYZE")
    return bench_url


def db_check(url: str, runs: list[str], acked: list[str]) -> dict:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT wamid, count(*) FROM messages WHERE wamid LIKE ANY(%s) GROUP BY wamid",
            ([f"wamid.BENCH.{run}.%" for run in runs],),
        ).fetchall()
        version = conn.execute("SHOW server_version").fetchone()[0]
        sync = conn.execute("SHOW synchronous_commit").fetchone()[0]
        fsync = conn.execute("SHOW fsync").fetchone()[0]
    stored = dict(rows)
    acked_set = set(acked)
    return {
        "acknowledged": len(acked),
        "acknowledged_distinct": len(acked_set),
        "stored": len(stored),
        "missing": len(acked_set - stored.keys()),
        "stored_more_than_once": sum(1 for n in stored.values() if n > 1),
        "stored_not_acknowledged": len(stored.keys() - acked_set),
        "postgres": version,
        "synchronous_commit": sync,
        "fsync": fsync,
    }


def queued(database_url: str) -> int:
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM webhook_payloads WHERE processed_at IS NULL").fetchone()[0]


def processed_messages(database_url: str, run: str) -> int:
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM messages WHERE wamid LIKE %s", (f"wamid.BENCH.{run}.%",)).fetchone()[
            0
        ]


def server_env(database_url: str, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WHATSAPP_", "JWT_", "MOCK_"))}
    env.update(
        NODE_ENV="local",
        DATABASE_URL=database_url,
        PYTHONPATH=os.pathsep.join([str(ROOT / "backend"), str(ROOT)]),
        LOG_LEVEL=os.environ.get("BENCH_LOG_LEVEL", "INFO"),
        PORT=str(port),
        BIND_HOST="127.0.0.1",
    )
    return env


def start_server(name: str, app: str, database_url: str, topology: Topology) -> tuple[subprocess.Popen, str]:
    port = free_port()
    log = open(OUT / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), app],
        env=server_env(database_url, port),
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=topology.server_preexec(),  # sets the CPUs only (no threads yet)
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
    except BaseException:
        stop(proc)  # a server that never became healthy is not left running
        raise
    return proc, url
