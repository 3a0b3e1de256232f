"""POST /api/conversations/<id>/messages: validation, provider outcomes mapped to HTTP, storage, and the
whole path over real HTTP (gunicorn -> WhatsApp adapter -> a fake Meta; gunicorn -> mock -> signed status
webhooks back into the same gunicorn)."""

from __future__ import annotations

import json

import pytest
import requests

from mv_os import db
from mv_os.models import Message
from mv_os.providers.base import (
    PermanentProviderError,
    ProviderConfigError,
    RetryableProviderError,
    SendResult,
)
from mv_os.providers.mock import MockMessaging
from mv_os.webhooks import processor
from tests.support.servers import STAGING_SECRETS, LiveServer, backend_env, login
from tests.support.webhooks import signed_headers, status_payload


class FakeProvider:
    """Answers with a fixed result or raises a fixed error; records what it was asked."""

    name = "fake"

    def __init__(self, result: SendResult | None = None, error: Exception | None = None):
        self.result = result
        self.error = error
        self.calls: list[tuple[str, str]] = []

    def send_text(self, to, body, *, reply_to=None):
        self.calls.append((to, body))
        if self.error:
            raise self.error
        return self.result


@pytest.fixture
def send(client, auth_headers, conversation):
    def _send(payload, conversation_id=conversation):
        return client.post(f"/api/conversations/{conversation_id}/messages", json=payload, headers=auth_headers)

    return _send


def stored_messages(app) -> list[Message]:
    with app.app_context(), db.database.connection_context():
        return list(Message.select().order_by(Message.id))


def test_local_send_goes_through_the_mock_and_is_stored(app, send, conversation):
    response = send({"text": "Hallo Jürgen"})
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["direction"] == "out"
    assert body["status"] == "accepted"
    assert body["text"] == "Hallo Jürgen"
    assert body["wamid"].startswith("wamid.MOCK.")
    mock = app.extensions["messaging"]
    assert isinstance(mock, MockMessaging)
    assert [(s.to, s.body) for s in mock.sent] == [("4915112345678", "Hallo Jürgen")]
    [message] = stored_messages(app)
    assert (message.wamid, message.conversation_id) == (body["wamid"], conversation)


@pytest.mark.parametrize(
    "payload",
    [{}, {"text": ""}, {"text": "   \n"}, {"text": 42}, {"text": None}, {"text": "x" * 4097}, ["text"]],
    ids=["missing", "empty", "blank", "number", "null", "4097-chars", "not-an-object"],
)
def test_empty_or_over_long_text_is_400_and_nothing_is_sent(app, send, payload):
    fake = app.extensions["messaging"] = FakeProvider(SendResult("wamid.never", "x"))
    response = send(payload)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_request"
    assert fake.calls == []


def test_exactly_4096_characters_are_allowed(app, send):
    app.extensions["messaging"] = FakeProvider(SendResult("wamid.long", "4915112345678"))
    assert send({"text": "ä" * 4096}).status_code == 201


def test_unknown_conversation_is_404_and_no_token_is_401(client, send, conversation):
    assert send({"text": "hi"}, conversation_id=conversation + 999).status_code == 404
    assert client.post(f"/api/conversations/{conversation}/messages", json={"text": "hi"}).status_code == 401


def test_permanent_provider_error_is_422_with_metas_code(app, send):
    app.extensions["messaging"] = FakeProvider(error=PermanentProviderError("Re-engagement message", code=131047))
    response = send({"text": "hi"})
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "provider_rejected"
    assert error["meta_code"] == 131047
    assert "24 hours" in error["message"]
    [message] = stored_messages(app)  # stored before the call: the refusal is on the row, for good
    assert (message.status, message.error_code, message.id) == ("failed", "131047", error["message_id"])


def test_retries_exhausted_is_503(app, send):
    app.extensions["messaging"] = FakeProvider(error=RetryableProviderError("rate limited", code=130429, attempts=4))
    response = send({"text": "hi"})
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "provider_unavailable"
    assert response.headers["Retry-After"] == "1"
    [message] = stored_messages(app)  # no outcome: kept pending with the reason, a retry sends it
    assert (message.status, message.error_code, message.wamid) == ("pending", "provider_unavailable", None)


def test_bad_credentials_are_502_not_the_operators_fault(app, send):
    app.extensions["messaging"] = FakeProvider(error=ProviderConfigError("token expired", code=190))
    response = send({"text": "hi"})
    assert response.status_code == 502
    assert response.get_json()["error"]["code"] == "provider_misconfigured"


def test_a_receipt_that_raced_ahead_of_the_send_is_applied(app, client, send):
    """Meta can deliver the `delivered` webhook before our insert commits; the status must not be lost."""
    wamid = "wamid.raced-ahead"
    early = status_payload(wamid, "delivered")
    assert client.post("/webhooks/whatsapp", data=early, headers=signed_headers(early)).status_code == 200
    with app.app_context():
        processor.drain(app.config["SETTINGS"].whatsapp_phone_number_id)  # the receipt is stored first
    app.extensions["messaging"] = FakeProvider(SendResult(wamid, "4915112345678"))
    response = send({"text": "hi"})
    assert response.status_code == 201
    assert response.get_json()["status"] == "delivered"


# ------------------------------------------------------------------------------------ over real HTTP


@pytest.mark.slow
def test_staging_sends_through_the_whatsapp_adapter_to_meta(settings, user, conversation, httpserver):
    """gunicorn with NODE_ENV=staging, its Graph API base URL pointed at a fake Meta."""
    path = "/v23.0/106540352242922/messages"
    httpserver.expect_ordered_request(path, method="POST").respond_with_json(
        {"messaging_product": "whatsapp", "messages": [{"id": "wamid.from-fake-meta"}]}
    )
    httpserver.expect_ordered_request(path, method="POST").respond_with_json(
        {"error": {"message": "Re-engagement message", "code": 131047, "fbtrace_id": "x"}}, status=400
    )
    httpserver.expect_ordered_request(path, method="POST").respond_with_data("busy", status=503)
    httpserver.expect_ordered_request(path, method="POST").respond_with_data("busy", status=503)
    env = backend_env(
        settings.database_url,
        **STAGING_SECRETS,
        WHATSAPP_API_BASE_URL=httpserver.url_for("/").rstrip("/"),
        LOG_LEVEL="INFO",
        WEB_CONCURRENCY="1",  # one request at a time; the fake Meta's answers are ordered
    )
    server = LiveServer(env).start()
    try:
        headers = login(server, user.email)
        url = f"{server.url}/api/conversations/{conversation}/messages"
        created = requests.post(url, json={"text": "Grüße aus Staging"}, headers=headers, timeout=10)
        refused = requests.post(url, json={"text": "too late"}, headers=headers, timeout=10)
        unavailable = requests.post(url, json={"text": "busy"}, headers=headers, timeout=10)
    finally:
        log = server.kill()
    # Staging logs JSON lines only: the app's and gunicorn's own ("Booting worker", "Handling signal").
    lines = [json.loads(line) for line in log.splitlines() if line.strip()]
    assert any(line["message"].startswith("Booting worker") for line in lines), log[:2000]
    assert any(line.get("path", "").endswith("/messages") and line.get("status") == 503 for line in lines)
    assert STAGING_SECRETS["WHATSAPP_ACCESS_TOKEN"] not in log and STAGING_SECRETS["JWT_SECRET"] not in log
    assert created.status_code == 201, created.text
    assert created.json()["wamid"] == "wamid.from-fake-meta"
    assert refused.status_code == 422
    assert refused.json()["error"]["meta_code"] == 131047
    assert unavailable.status_code == 503
    first = httpserver.log[0][0]
    assert first.headers["Authorization"] == f"Bearer {STAGING_SECRETS['WHATSAPP_ACCESS_TOKEN']}"
    assert first.get_json()["to"] == "4915112345678"
    assert first.get_json()["text"]["body"] == "Grüße aus Staging"
    assert len(httpserver.log) == 4  # one success, one permanent (no retry), two attempts for the 503
