"""Shared fixtures: a real PostgreSQL database per worker, `settings`, `app`, `client`, users and tokens,
and `live_server` (gunicorn over real HTTP on 127.0.0.1)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
import requests

from mv_os import create_app, db
from mv_os.cli import create_user
from mv_os.settings import Environment, Settings
from tests.pg import create_worker_database, drop_database

ROOT = Path(__file__).resolve().parents[1]
DEMO_PASSWORD = "correct horse battery staple"


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
    return Settings(environment=Environment.LOCAL, database_url=migrated_url, log_level="WARNING")


def truncate_all(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'schema_migration'"
            )
        ]
        if tables:
            conn.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE")


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


@pytest.fixture
def user(app):
    with app.app_context(), db.database.connection_context():
        return create_user("operator@example.com", DEMO_PASSWORD, "Operator")


@pytest.fixture
def token(client, user) -> str:
    response = client.post("/api/auth/login", json={"email": user.email, "password": DEMO_PASSWORD})
    assert response.status_code == 200, response.get_json()
    return response.get_json()["access_token"]


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
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited early:\n{self.proc.stdout.read()}")
            try:
                if requests.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except (requests.ConnectionError, requests.Timeout):  # a worker still booting (busy CPU)
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("gunicorn did not answer /healthz in time")

    def stop(self) -> str:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.stdout.read() if self.proc and self.proc.stdout else ""


@pytest.fixture
def live_server(settings: Settings):
    """A real gunicorn on the worker's migrated database; tables are emptied afterwards."""
    server = LiveServer(backend_env(settings.database_url)).start()
    yield server
    server.stop()
    truncate_all(settings.database_url)


@pytest.fixture(autouse=True, scope="session")
def _no_background_webhook_processor():
    """Apps driven in-process (Flask test client) get no webhook processor thread: a test that needs the
    archived payloads processed calls `processor.drain()`.  gunicorn servers (LiveServer) start their own."""
    from mv_os.webhooks import processor

    processor.shared.autostart = False
    yield
    processor.shared.stop(timeout=5)
