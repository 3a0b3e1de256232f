"""Browser tests' fixtures: Playwright for Python driving Debian's Chromium against a real gunicorn and
PostgreSQL (the helpers the tests call are in tests/support/browser.py).

Nothing here skips.  A missing browser is a failure with a message that says how to install it, so CI can
never go green without having run these tests (`nox -s tests` deselects them, visibly, only outside CI on a
machine without Chromium; `nox -s e2e` always runs them).

Screenshots go to artifacts/e2e/ (git-ignored; CI keeps it as a build artifact)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from tests.support.browser import new_context, reset_database, server_env, start_server
from tests.support.databases import truncate_all
from tests.support.servers import LiveServer

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
