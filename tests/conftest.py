"""Shared fixtures: a real PostgreSQL database per worker, `settings`, `app`, `client`, users and tokens,
and `live_server` (gunicorn over real HTTP on 127.0.0.1)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
import requests
from pytest_httpserver import HTTPServer

from mv_os import create_app, db
from mv_os.auth import hash_password, issue_token
from mv_os.models import Contact, Conversation, User
from mv_os.settings import Environment, Settings
from tests.pg import create_worker_database, drop_database

ROOT = Path(__file__).resolve().parents[1]
DEMO_PASSWORD = "correct horse battery staple"
# The tests' PASSWORD_HASH_METHOD (local only; README "Testing"): scrypt with N=1024 instead of 32768, about
# 3 ms of CPU per hash or check instead of 100 ms.  test_auth.py and test_settings.py prove that without the
# variable, and always in staging/production, passwords get werkzeug's default scrypt parameters.
TEST_PASSWORD_HASH_METHOD = "scrypt:1024:8:1"  # pragma: allowlist secret (a hash method name)


def pytest_collection_modifyitems(config, items):
    """Longest first, so that xdist's workers finish together instead of one waiting for a long test that
    started last: the browser tests, then modules with `slow` tests, then the rest.  Modules stay together and
    keep their order; tests keep theirs within a module."""

    def rank(item) -> int:
        return 0 if item.get_closest_marker("e2e") else 1 if item.get_closest_marker("slow") else 2

    module_rank: dict[str, int] = {}
    for item in items:
        module_rank[item.nodeid.split("::")[0]] = min(rank(item), module_rank.get(item.nodeid.split("::")[0], 2))
    items.sort(key=lambda item: module_rank[item.nodeid.split("::")[0]])  # stable


@pytest.fixture(scope="session")
def database_url(worker_id: str) -> str:
    admin, url = create_worker_database(worker_id)
    yield url
    db.database.obj and db.database.obj.close_all()
    drop_database(admin, urlsplit(url).path.lstrip("/"))


@pytest.fixture(scope="session")
def migrated_url(database_url: str) -> str:
    app = create_app(Settings(database_url=database_url))
    with app.app_context():
        db.migrate()
    return database_url


@pytest.fixture(scope="session")
def worker_id(request) -> str:
    # pytest-xdist provides this fixture too; this fallback keeps a plain `pytest` run working.
    return getattr(request.config, "workerinput", {}).get("workerid", "main")


@pytest.fixture
def settings(migrated_url: str) -> Settings:
    return Settings(
        environment=Environment.LOCAL,
        database_url=migrated_url,
        log_level="WARNING",
        password_hash_method=TEST_PASSWORD_HASH_METHOD,
    )


# Children before parents, so DELETE never trips a foreign key (NO ACTION ones included).
_TABLES_CHILDREN_FIRST = """
WITH RECURSIVE t AS (
    SELECT c.oid, c.relname FROM pg_class c
    WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p') AND c.relname <> 'schema_migration'
), depth(oid, d) AS (
    SELECT oid, 0 FROM t
    UNION ALL
    SELECT f.confrelid, depth.d + 1 FROM depth JOIN pg_constraint f ON f.conrelid = depth.oid
    WHERE f.contype = 'f' AND f.confrelid <> f.conrelid AND depth.d < 20
)
SELECT t.relname, max(depth.d) AS d FROM t JOIN depth USING (oid) GROUP BY t.relname ORDER BY d, t.relname
"""


_TRUNCATE: dict[str, tuple[psycopg.Connection, str]] = {}  # database URL -> (open connection, the emptying script)


def truncate_all(url: str) -> None:
    """Empty every table but schema_migration and restart the id sequences, as TRUNCATE ... RESTART IDENTITY
    would, in one transaction.  DELETE instead of TRUNCATE: the tables hold a handful of rows, DELETE of an
    empty table writes nothing, and it does not wait for the ACCESS EXCLUSIVE lock that a live server's idle
    connections (or its webhook processor) would hold it up on.  Falls back to TRUNCATE for a foreign-key cycle.

    A live server's webhook processor may be storing a batch at that moment (it locks the same rows in the other
    order): then this gives up the lock wait quickly and tries again, instead of deadlocking.

    Most tests end with this, so it is cheap: one connection per database stays open for the session and the
    statements go in one round trip (a new connection costs PostgreSQL about 6 ms of CPU, the old version of
    this function 12 ms per call).  A connection the server dropped (restarted, database recreated) is replaced."""
    for attempt in range(50):
        conn, script = _truncate_connection(url)
        if script is None:
            return
        try:
            conn.execute(script)
            return
        except (psycopg.errors.LockNotAvailable, psycopg.errors.DeadlockDetected):
            conn.execute("ROLLBACK")  # the script's BEGIN left the session in the failed transaction
            if attempt == 49:
                raise
            time.sleep(0.05)
        except psycopg.OperationalError:
            _TRUNCATE.pop(url, None)
            conn.close()
            if attempt == 49:
                raise


def _truncate_connection(url: str) -> tuple[psycopg.Connection, str | None]:
    cached = _TRUNCATE.get(url)
    if cached is not None and not cached[0].closed:
        return cached
    conn = psycopg.connect(url, autocommit=True)
    tables = conn.execute(_TABLES_CHILDREN_FIRST).fetchall()
    if not tables:  # not migrated yet: nothing to empty, and nothing worth keeping a connection for
        conn.close()
        return conn, None
    if max(d for _, d in tables) >= 20:  # a cycle: let TRUNCATE ... CASCADE sort it out
        statements = ["TRUNCATE " + ", ".join(f'"{t}"' for t, _ in tables) + " RESTART IDENTITY CASCADE"]
    else:  # children (depth 0) first, the tables they reference after them
        statements = [f'DELETE FROM "{t}"' for t, _ in tables]  # noqa: S608 - names from pg_class
        statements.append(
            "SELECT setval(format('%I.%I', schemaname, sequencename)::regclass, start_value, false) "
            "FROM pg_sequences WHERE schemaname = 'public' AND last_value IS NOT NULL"
        )
    # One simple-protocol query: BEGIN ... COMMIT in a single round trip.
    script = "BEGIN; SET LOCAL lock_timeout = '200ms'; " + "; ".join(statements) + "; COMMIT"
    _TRUNCATE[url] = (conn, script)
    return conn, script


@pytest.fixture
def app(settings: Settings):
    app = create_app(settings)
    app.config["TESTING"] = True
    yield app
    db.database.obj.close_all()
    truncate_all(settings.database_url)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture(scope="session")
def user_password_hash() -> str:
    """DEMO_PASSWORD hashed once per session, with the app's own hash_password and the tests' cheap scrypt
    parameters, which werkzeug stores in the hash: every login against it, in-process or at a gunicorn, checks
    with them.  create_user's own hashing (and the default parameters) is tested in test_auth.py."""
    return hash_password(DEMO_PASSWORD, TEST_PASSWORD_HASH_METHOD)


@pytest.fixture
def user(app, user_password_hash: str):
    with app.app_context(), db.database.connection_context():
        return User.create(email="operator@example.com", password_hash=user_password_hash, display_name="Operator")


@pytest.fixture
def conversation(app) -> int:
    """A conversation with one contact (J\u00fcrgen) on the test phone number id; its id."""
    with app.app_context(), db.database.connection_context():
        contact = Contact.create(wa_id="4915112345678", profile_name="J\u00fcrgen")
        return Conversation.create(phone_number_id="106540352242922", contact=contact).id


@pytest.fixture
def token(app, user) -> str:
    """A bearer token for `user`, made by issue_token as POST /api/auth/login makes it, without the login's
    0.1 s password check (logging in is tested in test_auth.py)."""
    with app.app_context():
        return issue_token(user)["access_token"]


@pytest.fixture
def auth_headers(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def backend_env(database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WHATSAPP_", "JWT_", "NODE_ENV"))}
    env.update(
        NODE_ENV="local",
        DATABASE_URL=database_url,
        PYTHONPATH=os.pathsep.join([str(ROOT / "backend"), str(ROOT)]),
        LOG_LEVEL="WARNING",
    )
    env.pop("PASSWORD_HASH_METHOD", None)
    env.update(extra)
    return env


class LiveServer:
    """gunicorn running `mv_os:create_app()` with gunicorn.conf.py, on 127.0.0.1:<free port>."""

    def __init__(self, env: dict[str, str]):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**env, "PORT": str(self.port), "BIND_HOST": "127.0.0.1"}
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 20.0) -> LiveServer:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), "mv_os:create_app()"],
            env=self.env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            process_group=0,  # master and workers in a group of their own: `kill()` ends them all at once
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited early:\n{self.proc.stdout.read()}")
            try:
                if requests.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except (requests.ConnectionError, requests.Timeout):  # a worker still booting (busy CPU)
                time.sleep(0.02)
        self.stop()
        raise RuntimeError("gunicorn did not answer /healthz in time")

    def stop(self) -> str:
        """Graceful: SIGTERM, gunicorn finishes what is in flight (its workers notice within about 0.5 s).
        Returns the server's output."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.stdout.read() if self.proc and self.proc.stdout else ""

    def kill(self) -> str:
        """Immediate: SIGKILL to master and workers (their process group), for a server whose test is over or
        that should just vanish; nothing graceful is being tested.  Returns the server's output."""
        if self.proc and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        return self.proc.stdout.read() if self.proc and self.proc.stdout else ""


@pytest.fixture
def live_server(settings: Settings):
    """A real gunicorn on the worker's migrated database; tables are emptied afterwards.  One gunicorn worker
    (WEB_CONCURRENCY=1): the tests using it send one request at a time, and a second worker only costs a Python
    start-up (about 0.3 s of CPU)."""
    server = LiveServer(backend_env(settings.database_url, WEB_CONCURRENCY="1")).start()
    yield server
    server.kill()
    truncate_all(settings.database_url)


@pytest.fixture(autouse=True, scope="session")
def _no_background_webhook_processor():
    """Apps driven in-process (Flask test client) get no webhook processor thread: a test that needs the
    archived payloads processed calls `processor.drain()`.  gunicorn servers (LiveServer) start their own."""
    from mv_os.webhooks import processor

    processor.shared.autostart = False
    yield
    processor.shared.stop(timeout=5)


class _HTTPServer(HTTPServer):
    """pytest-httpserver's server, whose thread checks for `stop()` every 50 ms instead of every 0.5 s: the
    session's fake servers stop at once when a worker finishes instead of holding it half a second."""

    def thread_target(self) -> None:  # documented as the method to override
        self.server.serve_forever(poll_interval=0.05)


@pytest.fixture(scope="session")
def make_httpserver(httpserver_listen_address, httpserver_ssl_context):
    """pytest-httpserver's own session fixture (behind `httpserver`), with the server above."""
    host, port = httpserver_listen_address
    server = _HTTPServer(
        host=host or HTTPServer.DEFAULT_LISTEN_HOST,
        port=port or HTTPServer.DEFAULT_LISTEN_PORT,
        ssl_context=httpserver_ssl_context,
    )
    server.start()
    yield server
    server.clear()
    if server.is_running():
        server.stop()


@pytest.fixture
def state_dir():
    """A state folder for an embedded PostgreSQL of the test's own, inside the clone's git-ignored .mv-os/.

    Not under pytest's tmp_path: pytest resets /tmp/pytest-of-<user> to mode 0700 when a worker starts, and as
    root pgserver runs PostgreSQL as another user, who must be able to reach the data folder."""
    (ROOT / ".mv-os").mkdir(exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="test-state-", dir=ROOT / ".mv-os"))
    yield path
    from mv_os.localdb import stop_server

    stop_server(path / "pgdata")
    shutil.rmtree(path, ignore_errors=True)
