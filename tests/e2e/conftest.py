"""Browser tests: Playwright for Python driving Debian's Chromium against a real gunicorn and PostgreSQL.

Nothing here skips.  A missing browser is a failure with a message that says how to install it, so CI can
never go green without having run these tests (`nox -s tests` deselects them, visibly, only outside CI on a
machine without Chromium; `nox -s e2e` always runs them).

Screenshots go to artifacts/e2e/ (git-ignored; CI keeps it as a build artifact)."""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import psycopg
import pytest
from dotenv import dotenv_values
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from mv_os import create_app
from mv_os.cli import seed_demo
from mv_os.settings import Settings
from scripts.webhooks import replay as replay_cli
from tests.support.databases import truncate_all
from tests.support.servers import ROOT, TEST_PASSWORD_HASH_METHOD, LiveServer, backend_env

# Debian's headless shell first: the old headless mode, which Playwright itself uses for headless Chromium.  It
# leaves out the full browser's UI layers and costs about a third less CPU per test than /usr/bin/chromium
# (same engine, same version: Debian builds both from one source).  MV_OS_CHROMIUM picks another browser.
# noxfile.py keeps the same two paths for its "no Chromium" warning.
CHROMIUMS = ("/usr/bin/chromium-headless-shell", "/usr/bin/chromium")
CHROMIUM = os.environ.get("MV_OS_CHROMIUM") or next((c for c in CHROMIUMS if Path(c).is_file()), CHROMIUMS[0])
CHROMIUM_ARGS = [
    # One renderer process per site (127.0.0.1, whatever the port) in a browser context: the tests' pages share a
    # warm renderer instead of starting and warming up a new one each (about 0.9 s of CPU per test).
    "--process-per-site",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = ROOT / "artifacts" / "e2e"
LOCAL_TEMPLATE = dotenv_values(ROOT / "env" / "backend.env.local.example")
DEMO_EMAIL = LOCAL_TEMPLATE["DEMO_EMAIL"]
DEMO_PASSWORD = LOCAL_TEMPLATE["DEMO_PASSWORD"]
POLL_MS = 200  # the shortest FRONTEND_POLL_INTERVAL_MS allowed: "appears without a reload" in well under a second
TIMEOUT_MS = 10_000


@pytest.fixture(scope="session")
def browser() -> Browser:
    if not Path(CHROMIUM).is_file():
        pytest.fail(
            f"Chromium not found at {CHROMIUM}: the browser tests need it. Install it with "
            "`apt-get install -y chromium-headless-shell` (Debian; .ci/run does this) or point MV_OS_CHROMIUM at "
            "a Chromium.",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


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


@pytest.fixture(scope="package")
def shared_server(migrated_url: str):
    """One gunicorn for the worker's browser tests (each test resets the database first), gone before any other
    test runs on this worker (its webhook processor would work on their tables); killed, since no test here is
    about how it stops."""
    server = start_server(server_env(migrated_url))
    yield server
    server.kill()
    truncate_all(migrated_url)


@pytest.fixture
def server(shared_server: LiveServer, migrated_url: str) -> LiveServer:
    reset_database(migrated_url)
    return shared_server


def new_context(browser: Browser) -> BrowserContext:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-GB", timezone_id="UTC")
    context.set_default_timeout(TIMEOUT_MS)
    return context


@pytest.fixture(scope="package")
def shared_context(browser: Browser) -> BrowserContext:
    """One browser context for the worker's browser tests; each test gets a new page (a new tab: its own document
    and sessionStorage, where the app keeps its login; the app uses no cookies or localStorage).

    A page that stays open on the site (127.0.0.1) keeps the context's renderer process alive between tests, so
    each test's page starts in a warm renderer: a new context (and renderer) per test cost about 1.5 s of CPU,
    a new page in this one about 0.6 s."""
    context = new_context(browser)
    keeper = context.new_page()
    keeper.route("**/*", lambda route: route.fulfill(body="", content_type="text/plain"))
    keeper.goto("http://127.0.0.1/keeper")  # answered by the route above: no server needed
    yield context
    context.close()


@pytest.fixture
def page(request: pytest.FixtureRequest, browser: Browser) -> Page:
    """A new page in the shared context; tests marked `own_context` (they install Playwright's fake clock, which
    applies to the whole context) get a context of their own."""
    own = request.node.get_closest_marker("own_context") is not None
    context = new_context(browser) if own else request.getfixturevalue("shared_context")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    if own:
        context.close()
    else:
        page.close()
    assert errors == [], f"uncaught JavaScript errors: {errors}"


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
