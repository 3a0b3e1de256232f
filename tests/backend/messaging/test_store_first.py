"""A send is validated, stored (`pending`), sent, then its outcome recorded: nothing reaches Meta that is not
stored, and a retried POST with the same Idempotency-Key never sends twice.  Meta is a fake over real HTTP
(pytest-httpserver) that records every request it received; the app is the WhatsApp adapter's, in-process."""

from __future__ import annotations

import time

import pytest
from werkzeug import Response

from mv_os import db
from mv_os.models import Message
from mv_os.providers.whatsapp_cloud import WhatsAppCloudMessaging

PHONE = "106540352242922"
PATH = f"/v23.0/{PHONE}/messages"


@pytest.fixture
def meta(app, httpserver):
    """The app's provider: the real WhatsApp adapter, pointed at the fake Meta, one attempt, 0.3 s to answer."""
    app.extensions["messaging"] = WhatsAppCloudMessaging(
        access_token="test-token",
        phone_number_id=PHONE,
        base_url=httpserver.url_for("/").rstrip("/"),
        timeout=0.3,
        connect_timeout=0.3,
        max_attempts=1,
    )
    return httpserver


def accepted(wamid: str):
    return {"messaging_product": "whatsapp", "messages": [{"id": wamid}]}


def rows(app) -> list[Message]:
    with app.app_context(), db.database.connection_context():
        return list(Message.select().where(Message.direction == "out").order_by(Message.id))


def post(client, conversation, auth_headers, text, key=None, raw: bytes | None = None):
    headers = dict(auth_headers, **({"Idempotency-Key": key} if key else {}))
    url = f"/api/conversations/{conversation}/messages"
    if raw is not None:
        return client.post(url, data=raw, headers=headers, content_type="application/json")
    return client.post(url, json={"text": text}, headers=headers)


def test_a_lone_surrogate_is_refused_before_anything_is_stored_or_sent(app, client, auth_headers, conversation, meta):
    meta.expect_request(PATH, method="POST").respond_with_json(accepted("wamid.never"))
    response = post(client, conversation, auth_headers, None, raw=b'{"text":"a\\ud800b"}')
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_request"
    assert meta.log == []  # nothing reached Meta
    assert rows(app) == []


def test_the_message_is_stored_before_meta_answers_and_a_500_leaves_it_visible(
    app, client, auth_headers, conversation, meta
):
    seen_during_call = []

    def failing(request):
        seen_during_call.extend((m.status, m.text) for m in rows(app))  # the row exists while Meta works
        return Response("oops", status=500)

    meta.expect_ordered_request(PATH, method="POST").respond_with_handler(failing)
    response = post(client, conversation, auth_headers, "Hallo", key="k-500")
    assert response.status_code == 503
    assert seen_during_call == [("pending", "Hallo")]
    [message] = rows(app)
    assert response.get_json()["error"]["message_id"] == message.id
    assert (message.status, message.error_code, message.wamid) == ("pending", "provider_unavailable", None)
    listed = client.get(f"/api/conversations/{conversation}/messages", headers=auth_headers).get_json()["items"]
    assert [(m["status"], m["error"]["code"]) for m in listed] == [("pending", "provider_unavailable")]


def test_a_retried_post_with_the_same_key_never_sends_twice(app, client, auth_headers, conversation, meta):
    meta.expect_ordered_request(PATH, method="POST").respond_with_json(accepted("wamid.once"))
    first = post(client, conversation, auth_headers, "Nur einmal", key="key-1")
    again = post(client, conversation, auth_headers, "Nur einmal", key="key-1")
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.get_json()["id"] == again.get_json()["id"]
    assert again.get_json()["wamid"] == "wamid.once"
    assert len(meta.log) == 1
    other_text = post(client, conversation, auth_headers, "Etwas anderes", key="key-1")
    assert other_text.status_code == 422
    assert other_text.get_json()["error"]["code"] == "idempotency_key_reused"
    assert len(meta.log) == 1 and len(rows(app)) == 1


def test_a_timeout_is_shown_as_unconfirmed_and_a_retry_with_the_key_resolves_it(
    app, client, auth_headers, conversation, meta
):
    def hang(request):
        time.sleep(0.6)  # past the adapter's 0.3 s read timeout
        return Response("late", status=200)

    meta.expect_ordered_request(PATH, method="POST").respond_with_handler(hang)
    meta.expect_ordered_request(PATH, method="POST").respond_with_json(accepted("wamid.resolved"))
    timed_out = post(client, conversation, auth_headers, "Bist du da?", key="key-t")
    assert timed_out.status_code == 503
    [message] = rows(app)
    assert (message.status, message.error_code) == ("pending", "provider_timeout")
    assert "did not answer in time" in message.error_title
    time.sleep(0.4)  # the fake Meta finishes its slow answer
    retried = post(client, conversation, auth_headers, "Bist du da?", key="key-t")
    assert retried.status_code == 201, retried.get_json()
    assert (retried.get_json()["id"], retried.get_json()["wamid"]) == (message.id, "wamid.resolved")
    assert retried.get_json()["error"] is None
    assert len(rows(app)) == 1 and len(meta.log) == 2


def test_a_permanent_refusal_is_failed_for_good_and_a_retry_does_not_resend(
    app, client, auth_headers, conversation, meta
):
    meta.expect_ordered_request(PATH, method="POST").respond_with_json(
        {"error": {"message": "Re-engagement message", "code": 131047}}, status=400
    )
    refused = post(client, conversation, auth_headers, "zu spät", key="key-p")
    again = post(client, conversation, auth_headers, "zu spät", key="key-p")
    assert (refused.status_code, again.status_code) == (422, 200)
    assert again.get_json()["status"] == "failed"
    assert len(meta.log) == 1


@pytest.mark.parametrize("key", ["", "x" * 129, "caf\u00e9", "a b"])
def test_a_malformed_idempotency_key_is_400(client, auth_headers, conversation, meta, key):
    response = client.post(
        f"/api/conversations/{conversation}/messages",
        json={"text": "hi"},
        headers=dict(auth_headers, **{"Idempotency-Key": key}),
    )
    assert response.status_code == 400
    assert meta.log == []
