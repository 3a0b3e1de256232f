"""Shared fixtures: a real PostgreSQL database per worker, `settings`, `app`, `client`, users and tokens,
and `live_server` (gunicorn over real HTTP on 127.0.0.1)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from pytest_httpserver import HTTPServer

from mv_os import create_app, db
from mv_os.auth import hash_password, issue_token
from mv_os.localdb import drop_database
from mv_os.models import Contact, Conversation, User
from mv_os.settings import Environment, Settings
from tests.support.databases import create_worker_database, truncate_all
from tests.support.servers import DEMO_PASSWORD, ROOT, TEST_PASSWORD_HASH_METHOD, LiveServer, backend_env

# Fixtures that reach a database or a server: a `unit` test may use none of them.
_NOT_UNIT = {"database_url", "migrated_url", "settings", "app", "client", "live_server", "httpserver"}


def pytest_collection_modifyitems(config, items):
    """Longest first, so that xdist's workers finish together instead of one waiting for a long test that
    started last: the browser tests, then modules with `slow` tests, then the rest.  Modules stay together and
    keep their order; tests keep theirs within a module."""

    def rank(item) -> int:
        return 0 if item.get_closest_marker("e2e") else 1 if item.get_closest_marker("slow") else 2

    impure = [i.nodeid for i in items if i.get_closest_marker("unit") and _NOT_UNIT & set(i.fixturenames)]
    if impure:
        raise pytest.UsageError(f"`unit` tests must not use a database or server fixture: {', '.join(impure)}")
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
