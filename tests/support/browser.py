"""Helpers for the browser tests: the server they drive, the demo user, a browser context, screenshots,
replaying fixtures, and logging in."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import psycopg
import pytest
from dotenv import dotenv_values
from playwright.sync_api import Browser, BrowserContext, Page

from mv_os import create_app
from mv_os.cli import seed_demo
from mv_os.settings import Settings
from scripts.webhooks import replay as replay_cli
from tests.support.databases import truncate_all
from tests.support.servers import ROOT, TEST_PASSWORD_HASH_METHOD, LiveServer, backend_env

ARTIFACTS = ROOT / "artifacts" / "e2e"
LOCAL_TEMPLATE = dotenv_values(ROOT / "env" / "backend.env.local.example")
DEMO_EMAIL = LOCAL_TEMPLATE["DEMO_EMAIL"]
DEMO_PASSWORD = LOCAL_TEMPLATE["DEMO_PASSWORD"]
POLL_MS = 200  # the shortest FRONTEND_POLL_INTERVAL_MS allowed: "appears without a reload" in well under a second
TIMEOUT_MS = 10_000


def server_env(database_url: str, **extra: str) -> dict[str, str]:
    env = backend_env(database_url)
    for name in [k for k in env if k.startswith(("FRONTEND_", "MOCK_", "DEMO_", "PUBLIC_BASE_URL"))]:
        del env[name]  # nothing from the developer's shell changes what the test sees
    env.update(
        FRONTEND_POLL_INTERVAL_MS=str(POLL_MS),
        MOCK_STATUS_WEBHOOKS="1",
        MOCK_STATUS_DELAY="0.1",
        DEMO_EMAIL=DEMO_EMAIL,
        DEMO_PASSWORD=DEMO_PASSWORD,
        # One worker starts and stops in about a second (two take three); a browser's keep-alive connections
        # would otherwise hold a stop for the whole graceful timeout.
        WEB_CONCURRENCY="1",
        GUNICORN_GRACEFUL_TIMEOUT="1",
    )
    env.update(extra)
    return env


def start_server(env: dict[str, str], port: int | None = None) -> LiveServer:
    """gunicorn whose PUBLIC_BASE_URL is its own URL, so the mock's signed status webhooks come back to it."""
    server = LiveServer(env)
    if port is not None:
        server.port = port
        server.url = f"http://127.0.0.1:{port}"
        server.env["PORT"] = str(port)
    server.env["PUBLIC_BASE_URL"] = server.url
    return server.start()


_SEEDED: dict[str, tuple] = {}  # database URL -> the users row seed_demo wrote there


def reset_database(url: str) -> None:
    """Empty tables, then the local demo user, as `nox -s dev` seeds it (seed_demo reads DEMO_*).

    seed_demo runs once per database and session, with the tests' cheap scrypt parameters (each login at the
    server checks with the parameters stored in the hash); later resets put back the exact row it wrote."""
    truncate_all(url)
    columns = "email, password_hash, display_name, created_at"
    if url in _SEEDED:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"INSERT INTO users ({columns}) VALUES (%s, %s, %s, %s)", _SEEDED[url])  # noqa: S608
        return
    app = create_app(Settings(database_url=url, log_level="WARNING", password_hash_method=TEST_PASSWORD_HASH_METHOD))
    with pytest.MonkeyPatch.context() as mp, app.app_context():
        mp.setenv("DEMO_EMAIL", DEMO_EMAIL)
        mp.setenv("DEMO_PASSWORD", DEMO_PASSWORD)
        seed_demo()
    from mv_os import db

    db.database.obj.close_all()
    with psycopg.connect(url) as conn:
        _SEEDED[url] = conn.execute(f"SELECT {columns} FROM users").fetchone()  # noqa: S608


def new_context(browser: Browser) -> BrowserContext:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-GB", timezone_id="UTC")
    context.set_default_timeout(TIMEOUT_MS)
    return context


def screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def replay(server: LiveServer, *fixtures: str | Path) -> str:
    """Sign and POST webhook fixtures with the replay CLI's own `main()`, over real HTTP to the server, exactly as
    `nox -s replay` does (the CLI as a process of its own is test_replay.py's; here that would only add a Python
    start-up per call)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = replay_cli.main([*map(str, fixtures), "--url", server.url + "/webhooks/whatsapp"])
    assert code == 0, out.getvalue()
    return out.getvalue()


def message_row(url: str, **where: str) -> dict:
    clause = " AND ".join(f"{k} = %s" for k in where)
    with psycopg.connect(url) as conn:
        cur = conn.execute(f"SELECT id, wamid, status, direction FROM messages WHERE {clause}", list(where.values()))  # noqa: S608
        row = cur.fetchone()
    assert row is not None, where
    return dict(zip(("id", "wamid", "status", "direction"), row, strict=True))


def log_in(page: Page, server: LiveServer) -> None:
    page.goto(server.url + "/")
    page.get_by_label("Email").fill(DEMO_EMAIL)
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("heading", name="Inbox").wait_for()
