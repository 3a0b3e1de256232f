"""A real PostgreSQL for local runs and tests with no set-up.

Order: DATABASE_URL (always wins; e.g. from `docker compose up -d`) -> the embedded server from the `pgserver`
wheel (PostgreSQL 16, CPython 3.9-3.12) -> `initdb`/`pg_ctl` found on PATH.  Data is kept under a git-ignored
folder (`.mv-os/` at the repo root) between runs.  Never imported by the deployed app."""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg import sql

REPO_ROOT = Path(__file__).resolve().parents[2]
STATE_DIR = Path(os.environ.get("MV_OS_STATE_DIR") or REPO_ROOT / ".mv-os")


class LocalDatabaseUnavailable(RuntimeError):
    pass


def server_url(data_dir: Path) -> str:
    """Start (or reuse) a PostgreSQL server whose data lives in `data_dir`; return a URL to its `postgres` db."""
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        import pgserver
    except ImportError:
        return _pg_ctl_server(data_dir.with_name(data_dir.name + "-pgctl"))
    # cleanup_mode=None: keep the server running after this process exits, so the next run starts instantly.
    server = pgserver.get_server(data_dir, cleanup_mode=None)
    return server.get_uri("postgres")


def _pg_ctl_server(data_dir: Path) -> str:
    pg_ctl, initdb = shutil.which("pg_ctl"), shutil.which("initdb")
    if pg_ctl is None or initdb is None:
        raise LocalDatabaseUnavailable(
            f"no embedded PostgreSQL for Python {sys.version_info.major}.{sys.version_info.minor} (the pgserver wheel "
            "covers 3.9-3.12) and no initdb/pg_ctl on PATH. Either run with Python 3.11/3.12, install PostgreSQL, "
            "or run `docker compose up -d` and set "
            "DATABASE_URL=postgresql://postgres:postgres@localhost:5432/mv_os?schema=public"
        )
    if os.geteuid() == 0:
        raise LocalDatabaseUnavailable(
            "the pg_ctl fallback cannot run PostgreSQL as root; use Python 3.11/3.12 (pgserver) or docker compose"
        )
    socket_dir = Path(tempfile.gettempdir()) / f"mv-os-pg-{getpass.getuser()}"
    socket_dir.mkdir(mode=0o700, exist_ok=True)
    if not (data_dir / "PG_VERSION").exists():
        subprocess.run(
            [initdb, "-D", str(data_dir), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
            check=True,
            capture_output=True,
        )
    status = subprocess.run([pg_ctl, "-D", str(data_dir), "status"], capture_output=True)
    if status.returncode != 0:
        subprocess.run(
            [
                pg_ctl,
                "-D",
                str(data_dir),
                "-w",
                "-l",
                str(data_dir / "server.log"),
                "-o",
                f"-h '' -k {socket_dir}",
                "start",
            ],
            check=True,
            capture_output=True,
        )
    return f"postgresql://postgres@/postgres?host={socket_dir}"


def ensure_database(admin_url: str, name: str, *, recreate: bool = False) -> str:
    """Create database `name` on the server behind `admin_url` if missing; return a URL to it."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if recreate:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return with_database(admin_url, name)


def drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def with_database(url: str, name: str) -> str:
    """The same server URL with another database name (keeps the query string, e.g. ?host=/socket)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def local_database_url(name: str = "mv_os") -> str:
    """DATABASE_URL if set, else the embedded server's `name` database (created on first use)."""
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    started = time.perf_counter()
    url = ensure_database(server_url(STATE_DIR / "pgdata"), name)
    print(
        f"mv-os: embedded PostgreSQL ready in {time.perf_counter() - started:.2f}s (data in {STATE_DIR / 'pgdata'})",
        file=sys.stderr,
    )
    return url
