"""The same files in every environment: the banner comes from the runtime /config.json; and what a person
sees when the backend cannot be reached."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from mv_os.frontend import build_config
from mv_os.settings import Environment, Settings
from tests.support.browser import log_in, reset_database, screenshot, server_env, start_server
from tests.support.servers import LiveServer, cloud_credentials

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# Test-only staging credentials, made per run (staging refuses values committed to the repository).
STAGING = {
    "NODE_ENV": "staging",
    **cloud_credentials(),
    "WHATSAPP_PHONE_NUMBER_ID": "100000000000002",
    "MOCK_STATUS_WEBHOOKS": "0",
}


def test_staging_is_loud_and_unmistakable(page: Page, migrated_url: str):
    """A real gunicorn with NODE_ENV=staging and no FRONTEND_* at all: the defaults alone make it loud."""
    reset_database(migrated_url)
    env = server_env(migrated_url, **STAGING)
    del env["FRONTEND_POLL_INTERVAL_MS"]
    server = start_server(env)
    try:
        page.goto(server.url + "/")
        banner = page.get_by_role("note", name="Environment")
        expect(banner).to_have_text("STAGING environment — not production")
        expect(banner).to_have_class(re.compile(r"\benv-banner-staging\b"))
        expect(page).to_have_title("[STAGING] Log in · MV-OS")
        log_in(page, server)
        expect(banner).to_be_visible()
        expect(page).to_have_title("[STAGING] Inbox · MV-OS")
        screenshot(page, "staging-inbox")
        # The banner is drawn from the server's answer, not from anything in the files.
        assert page.evaluate("fetch('/config.json').then(r => r.json())") == {
            "environment": "staging",
            "env_label": "STAGING",
            "api_base": "/api",
            "poll_interval_ms": 5000,
        }
    finally:
        server.kill()


def test_production_is_quiet(page: Page, server):
    """Production cannot run against the test database (the settings guard refuses localhost), so the browser
    gets the exact /config.json the backend builds for production; the page and API are the real server's."""
    production = build_config(Settings(environment=Environment.PRODUCTION), {})[0].as_json()
    page.route("**/config.json", lambda route: route.fulfill(json=production))
    page.goto(server.url + "/")
    expect(page.get_by_label("Email")).to_be_visible()
    expect(page.get_by_role("note", name="Environment")).to_be_hidden()
    expect(page.get_by_label("Environment: PRODUCTION")).to_have_text("PRODUCTION")
    expect(page).to_have_title("Log in · MV-OS")
    screenshot(page, "production-login")


@pytest.mark.own_context  # page.clock applies to the whole browser context
def test_an_unreachable_backend_shows_a_retrying_notice_then_recovers(page: Page, server: LiveServer):
    """The worker's shared gunicorn is killed and started again on the same port (the browser tests after this
    one use the restarted server)."""
    # The page's timers run on Playwright's clock: real time until the backend is back, then the test moves
    # the clock on instead of sitting through the back-off (up to 5 s) and the 3 s "Connected again." note.
    page.clock.install()
    log_in(page, server)
    notice = page.locator("#connection-notice")
    expect(notice).to_be_hidden()
    server.kill()  # the backend vanishes
    try:
        expect(notice).to_be_visible()
        expect(notice).to_have_attribute("role", "status")
        expect(notice).to_contain_text(re.compile(r"Cannot reach the MV-OS backend\. Retrying in \d+ s"))
        expect(notice.get_by_role("button", name="Retry now")).to_be_visible()
        screenshot(page, "backend-unreachable")

        # Freeze the page's clock, so no retry can happen before the backend is back; then let the longest
        # back-off pass: the page must retry by itself (nobody presses "Retry now").
        page.clock.pause_at(page.evaluate("Date.now()") / 1000 + 0.05)
    finally:
        server.start()  # same port, same environment
    page.clock.run_for(5_000)  # Poller.retryDelay() caps at max(interval, 5 s)
    expect(notice).to_have_text("Connected again.")
    page.clock.run_for(3_000)
    expect(notice).to_be_hidden()
    # Still logged in: nothing was lost while the backend was away.
    expect(page.get_by_role("heading", name="Inbox")).to_be_visible()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()


@pytest.mark.own_context  # page.clock applies to the whole browser context
def test_a_backend_unreachable_at_start_is_retried_until_it_answers(page: Page, server):
    page.clock.install()  # the 2 s retry timer is moved on by the test instead of waited for
    page.route("**/config.json", lambda route: route.abort("connectionrefused"))
    page.goto(server.url + "/")
    notice = page.locator("#connection-notice")
    expect(notice).to_contain_text("Cannot reach the MV-OS backend.")
    expect(page.get_by_label("Email")).to_have_count(0)
    page.unroute("**/config.json")
    page.clock.fast_forward(2_000)  # config.js RETRY_MS: the page retries by itself
    expect(page.get_by_label("Email")).to_be_visible(timeout=5_000)
    expect(page.get_by_role("note", name="Environment")).to_contain_text("LOCAL")
