"""Property: a correctly signed body, however malformed, never gets a 5xx and never crashes the receiver.

Signed bodies are what an attacker cannot send, but Meta can change its shapes at any time; the receiver
must answer 200 (archived) or 400 (not JSON / not an object); the processor must then store every archived
payload (possibly raw) without an error, and the database must stay usable.  Runs through the Flask test
client for speed, on the real PostgreSQL, and drains the processor after every 200."""

from __future__ import annotations

import io
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mv_os import db
from mv_os.meta.signing import meta_json
from mv_os.webhooks import processor
from tests.support.databases import scalar
from tests.support.strategies import JSONISH, META_SHAPED, encode
from tests.support.webhooks import signed_headers

# Hypothesis's default of 100 examples per property (about 8 ms each here); the seed is random on every run, so
# CI explores new bodies each time instead of the same ones longer.  `nox -s fuzz` sets MV_OS_FUZZ_EXAMPLES for
# its long run (thousands per property).
EXAMPLES = int(os.environ.get("MV_OS_FUZZ_EXAMPLES") or 100)
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=False,
)


@pytest.fixture
def post(client, app):
    stats = {"count": 0}
    settings = app.config["SETTINGS"]

    def _post(body: bytes):
        stats["count"] += 1
        response = client.post("/webhooks/whatsapp", data=body, headers=signed_headers(body))
        assert response.status_code in (200, 400), (
            response.status_code,
            response.get_data(as_text=True)[:300],
            body[:300],
        )
        if response.status_code == 200:
            with app.app_context():
                processor.drain(settings.whatsapp_phone_number_id, timeout=10)
                with db.database.connection_context():
                    failed = db.database.execute_sql(
                        "SELECT processing_error FROM webhook_payloads WHERE processing_error IS NOT NULL LIMIT 1"
                    ).fetchall()
            assert not failed, (body[:300], failed)
        return response

    _post.stats = stats
    yield _post
    # Every archived payload can be processed again (a replay after a fix): queue them all once more.
    with app.app_context():
        with db.database.connection_context():
            db.database.execute_sql("UPDATE webhook_payloads SET processed_at = NULL, processing_error = NULL")
        processor.drain(settings.whatsapp_phone_number_id, timeout=60)
        with db.database.connection_context():
            archived, failed = db.database.execute_sql(
                "SELECT count(*), count(processing_error) FROM webhook_payloads"
            ).fetchone()
    print(f"fuzz: {stats['count']} signed bodies, {archived} archived and re-processed, {failed} failures")
    assert failed == 0


@FUZZ_SETTINGS
@given(payload=META_SHAPED)
def test_signed_meta_shaped_garbage_is_never_a_server_error(post, payload):
    response = post(encode(payload))
    assert response.status_code == 200  # a JSON object: always accepted and archived


@FUZZ_SETTINGS
@given(payload=JSONISH)
def test_signed_arbitrary_json_is_never_a_server_error(post, payload):
    post(encode(payload))


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=300))
def test_signed_arbitrary_bytes_are_never_a_server_error(post, body):
    post(body)


def test_the_database_is_still_consistent_after_garbage(client, post):
    """One deliberately hostile payload: NUL bytes, NaN, lone surrogates, huge ids; then a normal one works."""
    hostile = (
        b'{"entry":[{"changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"\\u0000"},'
        b'"contacts":[{"wa_id":"\\ud800","profile":{"name":"\\u0000x"}}],'
        b'"messages":[{"id":"' + b"w" * 300 + b'","from":"1","type":"text","text":{"body":null}},'
        b'{"id":"ok.1","from":"\\ud800","timestamp":"1e400","type":"\\u0000","text":{"body":"\\u0000"}}],'
        b'"statuses":[{"id":"s.1","status":"read","timestamp":1e400,"errors":[{"code":1e999}]}]}}]}]}'
    )
    assert post(hostile).status_code == 200
    normal = meta_json(
        {
            "entry": [
                {
                    "changes": [
                        {
                            "field": "messages",
                            "value": {
                                "messages": [
                                    {
                                        "id": "wamid.after",
                                        "from": "49151",
                                        "timestamp": "1764080000",
                                        "type": "text",
                                        "text": {"body": "ok"},
                                    }
                                ]
                            },
                        }
                    ]
                }
            ]
        }
    )
    assert post(normal).status_code == 200
    assert (
        scalar(
            client.application.config["SETTINGS"].database_url, "SELECT text FROM messages WHERE wamid = 'wamid.after'"
        )
        == "ok"
    )


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
def test_nan_and_infinity_are_not_json(client, app, constant):
    """Python's json module takes them; RFC 8259 does not, and neither does the receiver: 400, nothing archived,
    whether the body comes with a Content-Length (the fast path) or chunked (Flask's route)."""
    body = b'{"entry":[{"changes":[{"field":"messages","value":{"statuses":[{"id":"w","timestamp":' + constant
    body += b"}]}}]}]}"
    framed = client.post("/webhooks/whatsapp", data=body, headers=signed_headers(body))
    chunked = client.post("/webhooks/whatsapp", input_stream=io.BytesIO(body), headers=signed_headers(body))
    for response in (framed, chunked):
        assert response.status_code == 400
        assert response.get_json()["error"]["code"] == "invalid_json"
    assert scalar(app.config["SETTINGS"].database_url, "SELECT count(*) FROM webhook_payloads") == 0
