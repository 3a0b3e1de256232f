"""What a person sees in the MV-OS inbox, in Chromium, against a real gunicorn + PostgreSQL.

The main flow is the issue's: log in as the local demo user, replay a signed inbound webhook through
scripts/webhooks, see it appear without a reload, open it, reply, watch the mock provider's signed status
webhooks turn the tick to "read", log out."""

from __future__ import annotations

import datetime as dt
import re
import time

import jwt
import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, expect

from mv_os.settings import Settings
from tests.support.browser import DEMO_EMAIL, POLL_MS, log_in, message_row, replay, screenshot
from tests.support.servers import ROOT, LiveServer

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

FIXTURES = ROOT / "scripts" / "webhooks" / "fixtures"
INBOUND = FIXTURES / "inbound_text.json"
CONTACT = "Jürgen Müller"
TIMEOUT_READ = 8_000  # three mock receipts 0.1 s apart, then a poll (generous: a busy CI machine)
INBOUND_TEXT = "Grüße! Gibt es das auch in Grün? https://example.com/p/42 😀"


def conversation_link(page: Page, name: str = CONTACT):
    return page.get_by_role("navigation", name="Inbox").get_by_role("link", name=re.compile(name))


def test_demo_user_reads_and_answers_a_whatsapp_message(page: Page, server: LiveServer, migrated_url: str):
    started = time.monotonic()
    page.goto(server.url + "/")

    # Every screen says where we are: local is loud.
    banner = page.get_by_role("note", name="Environment")
    expect(banner).to_contain_text("LOCAL")
    expect(banner).to_contain_text("not production")
    expect(page).to_have_title(re.compile(r"^\[LOCAL\] "))
    screenshot(page, "login")

    # 1. Log in with the keyboard only: type, Tab, type, Enter.
    expect(page.get_by_label("Email")).to_be_focused()
    page.keyboard.type(DEMO_EMAIL)
    page.keyboard.press("Tab")
    page.keyboard.type("demo-password")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Inbox")).to_be_visible()
    expect(page.get_by_text("No conversations yet")).to_be_visible()
    expect(page.get_by_text(DEMO_EMAIL)).to_be_visible()
    expect(banner).to_contain_text("LOCAL")
    page.evaluate("window.__sameDocument = true")

    # 2. A customer writes: Meta's signed webhook, replayed byte for byte by the CLI.
    assert "1/1 answered 200" in replay(server, INBOUND)

    # 3. It appears in the inbox by itself, newest first, with name, last message and time.
    link = conversation_link(page)
    expect(link).to_be_visible(timeout=POLL_MS * 15)
    expect(link).to_contain_text(INBOUND_TEXT)
    expect(link.locator("time")).to_have_attribute("datetime", re.compile(r"^2025-11-25T14:13:20"))
    assert page.evaluate("window.__sameDocument") is True, "the page was reloaded"
    screenshot(page, "inbox")

    # 4. Open it (keyboard), read it, reply with Enter.
    link.focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name=CONTACT, level=2)).to_be_visible()
    expect(page.get_by_text("+4915112345678")).to_be_visible()
    messages = page.get_by_role("log", name=CONTACT)
    incoming = messages.locator("li.message-in")
    expect(incoming).to_have_count(1)
    expect(incoming).to_contain_text(INBOUND_TEXT)
    composer = page.get_by_label(f"Message to {CONTACT}")
    expect(composer).to_be_focused()
    composer.fill("Ja, in Grün ab Montag.")
    composer.press("Enter")

    outgoing = messages.locator("li.message-out")
    expect(outgoing).to_have_count(1)
    expect(outgoing).to_contain_text("Ja, in Grün ab Montag.")
    expect(composer).to_have_value("")
    expect(composer).to_be_focused()
    # The mock provider posts signed sent -> delivered -> read webhooks to this server; the poller shows them.
    expect(outgoing).to_have_attribute("data-status", "read", timeout=TIMEOUT_READ)
    expect(outgoing.locator(".tick")).to_have_text("✓✓ Read")
    expect(outgoing.locator(".tick")).to_have_class(re.compile(r"\btick-read\b"))
    # Chronological order: the customer's message, then our reply.
    expect(messages.locator("li")).to_have_count(2)
    assert messages.locator("li").nth(0).get_attribute("data-direction") == "in"
    assert messages.locator("li").nth(1).get_attribute("data-direction") == "out"
    assert message_row(migrated_url, direction="out")["status"] == "read"
    # The inbox preview follows the reply.
    expect(conversation_link(page)).to_contain_text("You: Ja, in Grün ab Montag.")
    screenshot(page, "conversation")
    assert page.evaluate("window.__sameDocument") is True, "the page was reloaded"

    # 5. Log out: back to the login screen, and the session is gone (the inbox needs a login again).
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", name="Log in to MV-OS")).to_be_visible()
    expect(page.get_by_text("You have logged out.")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0
    page.goto(server.url + "/#/inbox")
    expect(page.get_by_role("heading", name="Log in to MV-OS")).to_be_visible()
    print(f"e2e flow took {time.monotonic() - started:.1f}s")


def test_a_wrong_password_says_so_and_keeps_the_person_on_the_login_screen(page: Page, server: LiveServer):
    page.goto(server.url + "/")
    page.get_by_label("Email").fill(DEMO_EMAIL)
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_have_text("The email or password is wrong.")
    expect(page.get_by_label("Password")).to_be_focused()
    expect(page.get_by_label("Password")).to_have_value("")
    expect(page.get_by_role("heading", name="Inbox")).to_have_count(0)
    assert page.evaluate("sessionStorage.length") == 0


def test_a_token_the_server_calls_expired_goes_back_to_login(page: Page, server: LiveServer):
    """The server is the judge: a token it refuses as expired (here: the browser's clock is behind) sends the
    person back to the login screen with a message, not to a broken inbox."""
    log_in(page, server)
    # The server's own signing key and claims, but expired: exactly what the token looks like hours later.
    stored = page.evaluate("JSON.parse(sessionStorage.getItem('mv-os.session'))")
    claims = jwt.decode(stored["token"], options={"verify_signature": False})
    past = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    claims.update(iat=past, exp=past + dt.timedelta(hours=1))
    expired = jwt.encode(claims, Settings().jwt_secret, algorithm="HS256")
    page.evaluate(
        "token => sessionStorage.setItem('mv-os.session', JSON.stringify({token, expiresAt: Date.now() + 3.6e6}))",
        expired,
    )
    page.reload()  # the person comes back to the tab later
    # The first poll is refused with 401 token_expired; the page sends the person to the login screen.
    expect(page.get_by_text("Your session has expired. Please log in again.")).to_be_visible(timeout=POLL_MS * 15)
    expect(page.get_by_role("heading", name="Log in to MV-OS")).to_be_visible()
    expect(page.get_by_role("button", name="Log out")).to_be_hidden()
    assert page.evaluate("sessionStorage.length") == 0


@pytest.mark.own_context  # page.clock applies to the whole browser context
def test_an_open_inbox_returns_to_login_when_the_session_runs_out(page: Page, server: LiveServer):
    """Left open past the token's lifetime (expires_in from the login answer), the inbox does not keep
    polling with a dead token: it goes to the login screen by itself."""
    page.clock.install()
    log_in(page, server)
    page.clock.fast_forward("01:00:01")  # JWT_TTL_SECONDS defaults to one hour
    expect(page.get_by_text("Your session has expired. Please log in again.")).to_be_visible()
    expect(page.get_by_label("Email")).to_be_focused()
    assert page.evaluate("sessionStorage.length") == 0


def test_a_failed_delivery_shows_whatsapps_reason(page: Page, server: LiveServer, migrated_url: str, tmp_path):
    replay(server, INBOUND)
    log_in(page, server)
    conversation_link(page).click()
    page.get_by_label(f"Message to {CONTACT}").fill("Sind Sie noch da?")
    page.get_by_role("button", name="Send").click()
    messages = page.get_by_role("log", name=CONTACT)
    expect(messages.locator("li.message-out")).to_have_count(1)
    wamid = message_row(migrated_url, direction="out")["wamid"]
    # Meta's "failed" receipt (131047, the 24-hour window) for the message we just sent, signed by the CLI.
    template = (FIXTURES / "status_4_failed.json").read_bytes()
    old_wamid = b"wamid.HBgNNDkxNTExMjM0NTY3OBUCABEYEjdEMkFCMjE5RkY0RTkwQTM4NQA="
    assert old_wamid in template
    failed = tmp_path / "status_failed_for_reply.json"
    failed.write_bytes(template.replace(old_wamid, wamid.encode()))
    replay(server, failed)

    outgoing = messages.locator("li.message-out")
    expect(outgoing).to_have_attribute("data-status", "failed", timeout=POLL_MS * 15)
    expect(outgoing.locator(".tick")).to_contain_text("Failed")
    expect(outgoing.locator(".message-error")).to_have_text(
        "Not delivered: Re-engagement message: Message failed to send because more than 24 hours have passed "
        "since the customer last replied to this number. (code 131047)"
    )
    screenshot(page, "conversation-failed")


def test_a_refused_send_shows_the_providers_reason_and_keeps_the_text(page: Page, server: LiveServer):
    """The local mock never refuses, so the browser gets the exact answer the API gives when WhatsApp does
    (api/messages.py: 422 provider_rejected with meta_code); everything else is the real server."""
    replay(server, INBOUND)
    log_in(page, server)
    conversation_link(page).click()
    refusal = {
        "error": {
            "code": "provider_rejected",
            "message": "More than 24 hours have passed since the customer last wrote; WhatsApp only allows a "
            "template message now.",
            "meta_code": 131047,
        }
    }
    page.route(
        re.compile(r".*/api/conversations/\d+/messages$"),
        lambda route: route.fulfill(status=422, json=refusal) if route.request.method == "POST" else route.continue_(),
    )
    composer = page.get_by_label(f"Message to {CONTACT}")
    composer.fill("Hallo?")
    composer.press("Enter")
    expect(page.get_by_role("alert")).to_have_text(
        "Not sent: More than 24 hours have passed since the customer last wrote; WhatsApp only allows a "
        "template message now. (WhatsApp error 131047)"
    )
    expect(composer).to_have_value("Hallo?")
    expect(page.get_by_role("log", name=CONTACT).locator("li.message-out")).to_have_count(0)
    screenshot(page, "send-refused")


def test_a_send_without_an_outcome_is_shown_and_sent_again_with_the_same_key(
    page: Page, server: LiveServer, migrated_url: str
):
    """The API stores a message before it calls WhatsApp: when the call ends without an outcome the message is
    listed as not sent yet, with the reason; sending the same text again reuses its Idempotency-Key."""
    import psycopg

    replay(server, INBOUND)
    log_in(page, server)
    conversation_link(page).click()
    with psycopg.connect(migrated_url, autocommit=True) as conn:
        (conversation_id,) = conn.execute("SELECT id FROM conversations").fetchone()
        conn.execute(
            "INSERT INTO messages (conversation_id, direction, type, text, status, error_code, error_title, "
            "idempotency_key, sent_at, created_at, updated_at) VALUES (%s, 'out', 'text', 'Frühere Nachricht', "
            "'pending', 'provider_timeout', 'WhatsApp did not answer in time; sending again may deliver it twice.', "
            "'earlier', now(), now(), now())",
            (conversation_id,),
        )
    log = page.get_by_role("log", name=CONTACT)
    expect(log.get_by_text("Not sent yet: WhatsApp did not answer in time")).to_be_visible(timeout=POLL_MS * 15)

    keys: list[str | None] = []

    def first_times_out(route):
        if route.request.method != "POST":
            return route.continue_()
        keys.append(route.request.headers.get("idempotency-key"))
        if len(keys) == 1:
            error = {"code": "provider_unavailable", "message": "WhatsApp did not answer in time."}
            return route.fulfill(status=503, json={"error": error})
        return route.continue_()

    page.route(re.compile(r".*/api/conversations/\d+/messages$"), first_times_out)
    composer = page.get_by_label(f"Message to {CONTACT}")
    composer.fill("Bist du da?")
    composer.press("Enter")
    expect(page.get_by_role("alert")).to_contain_text("Not sent: WhatsApp did not answer in time.")
    expect(composer).to_have_value("Bist du da?")
    composer.press("Enter")
    expect(log.locator("li.message-out", has_text="Bist du da?")).to_have_count(1)
    expect(composer).to_have_value("")
    assert len(keys) == 2 and keys[0] and keys[0] == keys[1]
    screenshot(page, "send-not-confirmed")


def test_the_pages_pass_an_axe_accessibility_check(page: Page, server: LiveServer):
    """axe-core (WCAG 2 A/AA rules, including colour contrast) on the login, inbox and conversation screens."""
    axe = Axe()
    # resultTypes: every violating node is reported in full (all this test reads); passes and the like are not
    # listed node by node.
    options = {
        "runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]},
        "resultTypes": ["violations"],
    }

    def violations() -> list[str]:
        results = axe.run(page, options=options).response
        return [f"{v['id']}: {[n['target'] for n in v['nodes']]}" for v in results["violations"]]

    page.goto(server.url + "/")
    page.get_by_label("Email").wait_for()
    assert violations() == []
    replay(server, INBOUND)
    log_in(page, server)
    conversation_link(page).wait_for()
    assert violations() == []
    conversation_link(page).click()
    page.get_by_label(f"Message to {CONTACT}").fill("Danke!")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("li.message-out")).to_have_attribute("data-status", "read", timeout=TIMEOUT_READ)
    assert violations() == []


def _fixture_without_profile(tmp_path):
    """inbound_text.json from a new number whose contact has no WhatsApp profile name, sent later."""
    body = INBOUND.read_bytes()
    swaps = [
        (
            b'{"profile":{"name":"J\\u00fcrgen M\\u00fcller"},"wa_id":"4915112345678","user_id":"DE.1502576394655843"}',
            b'{"wa_id":"4915100000001"}',
        ),
        (b'"from":"4915112345678","from_user_id":"DE.1502576394655843"', b'"from":"4915100000001"'),
        (b"wamid.HBgNNDkxNTExMjM0NTY3OBUCABIYFjNFQjBDMDdBNDUxNkZBMjY3QjAwRjEA", b"wamid.E2E-NO-PROFILE-1"),
        (b'"timestamp":"1764080000"', b'"timestamp":"1764090000"'),
        (b"Gr\\u00fc\\u00dfe!", b"Hallo?"),
    ]
    for old, new in swaps:
        assert old in body, old
        body = body.replace(old, new)
    path = tmp_path / "inbound_no_profile.json"
    path.write_bytes(body)
    return path


def test_the_inbox_is_newest_first_and_reorders_itself(page: Page, server: LiveServer, tmp_path):
    log_in(page, server)
    replay(server, INBOUND, FIXTURES / "inbound_user_id_only.json", _fixture_without_profile(tmp_path))
    links = page.get_by_role("navigation", name="Inbox").get_by_role("link")
    # Newest first; a contact without a profile name shows as its number.
    expect(links).to_have_count(3)
    expect(links.nth(0)).to_contain_text("+4915100000001")
    expect(links.nth(1)).to_contain_text("Maria López")
    expect(links.nth(2)).to_contain_text(CONTACT)
    # Answering the oldest conversation moves it to the top, without a reload.
    links.nth(2).click()
    page.get_by_label(f"Message to {CONTACT}").fill("Guten Tag!")
    page.keyboard.press("Enter")
    expect(links.nth(0)).to_contain_text(f"{CONTACT}")
    expect(links.nth(0)).to_contain_text("You: Guten Tag!")
    expect(links.nth(0)).to_have_attribute("aria-current", "page")
    expect(links.nth(1)).to_contain_text("+4915100000001")


def test_keyboard_focus_order_and_shift_enter(page: Page, server: LiveServer):
    replay(server, INBOUND)
    log_in(page, server)
    page.reload()  # a fresh page load, still logged in (sessionStorage)
    link = conversation_link(page)
    link.wait_for()

    def focused() -> str:
        return page.evaluate(
            "(() => { const e = document.activeElement;"
            " return `${e.tagName.toLowerCase()}:${e.getAttribute('aria-label') || e.textContent.trim()}`; })()"
        )

    page.keyboard.press("Tab")
    assert focused() == "a:Skip to main content"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    assert page.url.endswith("#/inbox"), "the skip link must not change the route"
    page.keyboard.press("Tab")
    assert focused().startswith("a:Jürgen Müller")
    page.keyboard.press("Shift+Tab")
    assert focused() == "button:Log out"
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    composer = page.get_by_label(f"Message to {CONTACT}")
    expect(composer).to_be_focused()
    # Shift+Enter adds a line and sends nothing; Tab reaches Send.
    page.keyboard.type("Zeile 1")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("Zeile 2")
    expect(composer).to_have_value("Zeile 1\nZeile 2")
    expect(page.locator("li.message-out")).to_have_count(0)
    page.keyboard.press("Tab")
    assert focused() == "button:Send"
    page.keyboard.press("Enter")
    expect(page.locator("li.message-out .message-text")).to_have_text("Zeile 1\nZeile 2")
