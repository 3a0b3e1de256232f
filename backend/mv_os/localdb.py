"""A real PostgreSQL for local runs and tests with no set-up, that stops when the last command using it ends.

Order: DATABASE_URL (always wins; e.g. from `docker compose up -d`) -> the embedded server from the `pgserver`
wheel (PostgreSQL 16, CPython 3.9-3.12) -> `initdb`/`pg_ctl` found on PATH.  Data is kept under a git-ignored
folder (`.mv-os/` at the repo root) between runs; the server is not.

Every process that asks for the server registers its pid.  A small watchdog process, started with the server in
a session of its own (so a Ctrl-C or a SIGTERM to the command's process group reaches neither), stops the server
once no registered process is alive, however those processes ended.  Never imported by the deployed app."""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

REPO_ROOT = Path(__file__).resolve().parents[2]
STATE_DIR = Path(os.environ.get("MV_OS_STATE_DIR") or REPO_ROOT / ".mv-os")
POLL_SECONDS = 0.2


class LocalDatabaseUnavailable(RuntimeError):
    pass


def server_url(data_dir: Path) -> str:
    """Start (or join) the server whose data lives in `data_dir`; return a URL to its `postgres` database.

    The server runs until every process that called this has ended."""
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    users = _users_dir(data_dir)
    users.mkdir(exist_ok=True)
    with _locked(data_dir):
        (users / str(os.getpid())).touch()
        url_file = users / "url"
        if _watchdog_alive(data_dir) and postmaster_pid(_actual_data_dir(data_dir)) and url_file.is_file():
            return url_file.read_text().strip()
        return _start_watchdog(data_dir)


def _users_dir(data_dir: Path) -> Path:
    return data_dir.with_name(data_dir.name + ".users")


@contextlib.contextmanager
def _locked(data_dir: Path) -> Iterator[None]:
    with open(data_dir.with_name(data_dir.name + ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # an exited child its parent has not reaped yet is not a user any more
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _live_users(data_dir: Path) -> list[int]:
    live = []
    for entry in _users_dir(data_dir).glob("[0-9]*"):
        if _alive(int(entry.name)):
            live.append(int(entry.name))
        else:
            entry.unlink(missing_ok=True)
    return live


def _watchdog_alive(data_dir: Path) -> bool:
    try:
        pid = int((_users_dir(data_dir) / "watchdog").read_text())
    except (OSError, ValueError):
        return False
    return _alive(pid)


def _actual_data_dir(data_dir: Path) -> Path:
    """The pg_ctl fallback keeps its cluster apart: a pgserver cluster may not suit the PATH's PostgreSQL."""
    try:
        return Path((_users_dir(data_dir) / "pgdata").read_text().strip())
    except OSError:
        return data_dir


def postmaster_pid(data_dir: Path) -> int | None:
    try:
        pid = int((data_dir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if _alive(pid) else None


def _start_watchdog(data_dir: Path) -> str:
    log = STATE_DIR / "embedded-postgres.log" if data_dir.parent == STATE_DIR else data_dir.parent / "postgres.log"
    with open(log, "a") as stderr:
        proc = subprocess.Popen(
            # -P: the script's folder (mv_os/) must not shadow top-level modules such as `settings` or `errors`.
            [sys.executable, "-P", __file__, "watch", str(data_dir)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            start_new_session=True,
            text=True,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},  # pgserver's platformdirs warns on headless machines
        )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    proc.stdout.close()
    if line.startswith("url "):
        return line.removeprefix("url ")
    proc.wait(timeout=30)
    raise LocalDatabaseUnavailable(line.removeprefix("error ") or f"the embedded PostgreSQL did not start (see {log})")


def _start_server(data_dir: Path) -> tuple[str, Path]:
    try:
        import pgserver
    except ImportError:
        return _pg_ctl_server(data_dir.with_name(data_dir.name + "-pgctl"))
    # cleanup_mode=None: pgserver's own clean-up runs at interpreter exit only; the watchdog stops the server.
    return pgserver.get_server(data_dir, cleanup_mode=None).get_uri("postgres"), data_dir


def _pg_ctl_server(data_dir: Path) -> tuple[str, Path]:
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
    if postmaster_pid(data_dir) is None:
        log = str(data_dir / "server.log")
        subprocess.run(
            [pg_ctl, "-D", str(data_dir), "-w", "-l", log, "-o", f"-h '' -k {socket_dir}", "start"],
            check=True,
            capture_output=True,
        )
    return f"postgresql://postgres@/postgres?host={socket_dir}", data_dir


def stop_server(data_dir: Path, timeout: float = 30.0) -> None:
    """Fast shutdown (SIGINT to the postmaster): open sessions are ended, nothing committed is lost."""
    pid = postmaster_pid(data_dir)
    if pid is None:
        return
    os.kill(pid, signal.SIGINT)
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    if _alive(pid):
        os.kill(pid, signal.SIGQUIT)


def watch(data_dir: Path) -> int:
    """The watchdog: start the server, report its URL on stdout, stop it when no user is left."""
    stopping = []
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    users = _users_dir(data_dir)
    try:
        url, actual = _start_server(data_dir)
    except (LocalDatabaseUnavailable, subprocess.CalledProcessError, OSError) as err:
        print(f"error {err}", flush=True)
        return 1
    (users / "url").write_text(url)
    (users / "pgdata").write_text(str(actual))
    (users / "watchdog").write_text(str(os.getpid()))
    print(f"url {url}", flush=True)
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - the reader has gone; nothing more is printed
    while True:
        time.sleep(POLL_SECONDS)
        with _locked(data_dir):
            if postmaster_pid(actual) is not None and _live_users(data_dir) and not stopping:
                continue
            stop_server(actual)
            for name in ("url", "watchdog"):
                (users / name).unlink(missing_ok=True)
            return 0


def ensure_database(admin_url: str, name: str, *, recreate: bool = False) -> str:
    """Create database `name` on the server behind `admin_url` if missing; return a URL to it."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin_url, autocommit=True) as conn:
        if recreate:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return with_database(admin_url, name)


def drop_database(admin_url: str, name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def with_database(url: str, name: str) -> str:
    """The same server URL with another database name (keeps the query string, e.g. ?host=/socket)."""
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


def local_database_url(name: str = "mv_os") -> str:
    """DATABASE_URL if set, else the embedded server's `name` database (created on first use)."""
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    started = time.perf_counter()
    url = ensure_database(server_url(STATE_DIR / "pgdata"), name)
    print(
        f"mv-os: embedded PostgreSQL ready in {time.perf_counter() - started:.2f}s (data in {STATE_DIR / 'pgdata'}; "
        "it stops when this command ends)",
        file=sys.stderr,
    )
    return url


if __name__ == "__main__":  # the watchdog: python localdb.py watch DATA_DIR
    if len(sys.argv) != 3 or sys.argv[1] != "watch":
        sys.exit("usage: python -P localdb.py watch DATA_DIR")
    sys.exit(watch(Path(sys.argv[2])))
