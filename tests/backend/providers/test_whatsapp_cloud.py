"""The WhatsApp Cloud adapter against a real local HTTP server that plays Meta's Graph API."""

from __future__ import annotations

import json
import threading
import time

import pytest
from werkzeug import Response

from mv_os.providers.base import (
    PermanentProviderError,
    ProviderConfigError,
    RetryableProviderError,
    SendResult,
)
from mv_os.providers.whatsapp_cloud import WhatsAppCloudMessaging
from tests.support.servers import free_port

PHONE_ID = "106540352242922"
PATH = f"/v23.0/{PHONE_ID}/messages"
TOKEN = "test-access-token-for-fake-meta"


def ok_body(wamid: str = "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI3RkQ3NzhBNTI3RDg5NjY3ODAA") -> dict:
    return {
        "messaging_product": "whatsapp",
        "contacts": [{"input": "4915112345678", "wa_id": "4915112345678"}],
        "messages": [{"id": wamid, "message_status": "accepted"}],
    }


def meta_error(code: int, message: str = "error", http_status: int = 400) -> Response:
    body = {"error": {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "AbCdEf123"}}
    return Response(json.dumps(body), status=http_status, content_type="application/json")


def make_adapter(httpserver, timeout: float) -> WhatsAppCloudMessaging:
    return WhatsAppCloudMessaging(
        access_token=TOKEN,
        phone_number_id=PHONE_ID,
        api_version="v23.0",
        base_url=httpserver.url_for("/"),
        timeout=timeout,
        connect_timeout=timeout,
        max_attempts=3,
        backoff=0.01,
    )


@pytest.fixture
def adapter(httpserver):
    # A local server answers at once, but a busy test machine (parallel workers) can take longer than 0.5 s to
    # schedule it: the timeout is not what these tests are about (the read-timeout test sets its own).
    return make_adapter(httpserver, timeout=5)


def test_success_posts_meta_request_and_returns_the_wamid(httpserver, adapter):
    httpserver.expect_oneshot_request(
        PATH,
        method="POST",
        headers={"Authorization": f"Bearer {TOKEN}"},
        json={
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": "4915112345678",
            "type": "text",
            "text": {"preview_url": False, "body": "Grüße"},
        },
    ).respond_with_json(ok_body())
    result = adapter.send_text("4915112345678", "Grüße")
    assert isinstance(result, SendResult)
    assert result.wamid == "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI3RkQ3NzhBNTI3RDg5NjY3ODAA"
    assert result.status == "accepted"
    httpserver.check_assertions()


def test_reply_context_and_business_scoped_recipient(httpserver, adapter):
    httpserver.expect_oneshot_request(PATH, method="POST").respond_with_json(ok_body("wamid.reply"))
    adapter.send_text("BR.1502576394655843", "oi", reply_to="wamid.original")
    sent = httpserver.log[0][0].get_json()
    assert sent["recipient"] == "BR.1502576394655843"
    assert "to" not in sent
    assert sent["context"] == {"message_id": "wamid.original"}


@pytest.mark.parametrize(
    ("code", "error_type"),
    [
        (131047, PermanentProviderError),
        (131026, PermanentProviderError),
        (100, PermanentProviderError),
        (190, ProviderConfigError),
    ],
    ids=["24h-window", "undeliverable", "invalid-parameter", "token-expired"],
)
def test_permanent_errors_are_not_retried(httpserver, adapter, code, error_type):
    httpserver.expect_request(PATH, method="POST").respond_with_response(meta_error(code, http_status=400))
    with pytest.raises(error_type) as caught:
        adapter.send_text("4915112345678", "hi")
    assert caught.value.code == code
    assert len(httpserver.log) == 1, "a permanent error must not be retried"


def test_token_expired_is_a_config_error_and_never_leaks_the_token(httpserver, adapter, caplog):
    httpserver.expect_request(PATH).respond_with_response(meta_error(190, "Error validating access token", 401))
    with pytest.raises(ProviderConfigError) as caught:
        adapter.send_text("4915112345678", "hi")
    assert TOKEN not in str(caught.value)
    assert TOKEN not in repr(adapter)
    assert TOKEN not in caplog.text


@pytest.mark.parametrize("code", [130429, 131056, 80007, 131000])
def test_retryable_codes_are_retried_until_attempts_run_out(httpserver, adapter, code):
    httpserver.expect_request(PATH, method="POST").respond_with_response(meta_error(code, http_status=400))
    with pytest.raises(RetryableProviderError) as caught:
        adapter.send_text("4915112345678", "hi")
    assert caught.value.code == code
    assert caught.value.attempts == 3
    assert len(httpserver.log) == 3


def test_5xx_then_success_returns_the_wamid(httpserver, adapter):
    httpserver.expect_ordered_request(PATH).respond_with_data("upstream broke", status=502)
    httpserver.expect_ordered_request(PATH).respond_with_response(meta_error(131000, http_status=500))
    httpserver.expect_ordered_request(PATH).respond_with_json(ok_body("wamid.third-time-lucky"))
    assert adapter.send_text("4915112345678", "hi").wamid == "wamid.third-time-lucky"
    assert len(httpserver.log) == 3


def test_read_timeout_is_not_retried_because_meta_may_have_sent_it(httpserver):
    adapter = make_adapter(httpserver, timeout=0.5)
    gave_up = threading.Event()

    def slow(_request):
        # Answers only after the client gave up (at most 1 s, as before), so the shared fake Meta is free again
        # as soon as this test is over instead of a fixed second later.
        gave_up.wait(timeout=1.0)
        return Response(json.dumps(ok_body()), content_type="application/json")

    httpserver.expect_request(PATH).respond_with_handler(slow)
    started = time.monotonic()
    try:
        with pytest.raises(RetryableProviderError) as caught:
            adapter.send_text("4915112345678", "hi")
        elapsed = time.monotonic() - started
    finally:
        gave_up.set()
    assert elapsed < 0.95, "the call must give up at its timeout"
    assert caught.value.safe_to_retry is False
    assert caught.value.attempts == 1


def test_connection_refused_is_retried_then_reported_retryable():
    adapter = WhatsAppCloudMessaging(
        access_token=TOKEN,
        phone_number_id=PHONE_ID,
        base_url=f"http://127.0.0.1:{free_port()}",
        max_attempts=2,
        backoff=0.01,
        timeout=0.5,
        connect_timeout=0.5,
    )
    with pytest.raises(RetryableProviderError) as caught:
        adapter.send_text("4915112345678", "hi")
    assert caught.value.attempts == 2


def test_a_2xx_without_message_id_is_an_error(httpserver, adapter):
    httpserver.expect_request(PATH).respond_with_json({"messaging_product": "whatsapp"})
    with pytest.raises(Exception, match="without a message id"):
        adapter.send_text("4915112345678", "hi")


def test_a_missing_token_is_a_config_error_and_nothing_is_sent(httpserver):
    adapter = WhatsAppCloudMessaging(access_token="", phone_number_id=PHONE_ID, base_url=httpserver.url_for("/"))
    with pytest.raises(ProviderConfigError):
        adapter.send_text("4915112345678", "hi")
    assert httpserver.log == []
