"""Property: a correctly signed body, however malformed, never gets a 5xx and never crashes the receiver.

Signed bodies are what an attacker cannot send, but Meta can change its shapes at any time; the receiver
must answer 200 (archived) or 400 (not JSON / not an object); the processor must then store every archived
payload (possibly raw) without an error, and the database must stay usable.  Runs through the Flask test
client for speed, on the real PostgreSQL, and drains the processor after every 200."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mv_os import db
from mv_os.meta.signing import meta_json
from mv_os.webhooks import processor
from tests.backend.messaging_support import scalar, signed_headers

# Hypothesis's default of 100 examples per property (about 8 ms each here); the seed is random on every run, so
# CI explores new bodies each time instead of the same ones longer.
FUZZ_SETTINGS = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=False,
)

KEYS = st.sampled_from(
    [
        "object",
        "entry",
        "id",
        "changes",
        "field",
        "value",
        "messaging_product",
        "metadata",
        "phone_number_id",
        "contacts",
        "profile",
        "name",
        "username",
        "wa_id",
        "user_id",
        "messages",
        "from",
        "from_user_id",
        "timestamp",
        "type",
        "text",
        "body",
        "image",
        "caption",
        "url",
        "reaction",
        "emoji",
        "statuses",
        "status",
        "recipient_id",
        "errors",
        "code",
        "title",
        "message",
        "error_data",
        "interactive",
        "button_reply",
    ]
)
NASTY_TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "",
            " ",
            "\x00",
            "\ud800",
            "a" * 300,
            "1" * 70,
            "wamid.X",
            "read",
            "failed",
            "delivered",
            "sent",
            "messages",
            "text",
            "-1",
            "99999999999999999999",
            "1e309",
            "NaN",
        ]
    ),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    NASTY_TEXT,
)
JSONISH = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(KEYS, st.text(max_size=8)), children, max_size=5),
    ),
    max_leaves=30,
)


def _message():
    return st.fixed_dictionaries(
        {"id": NASTY_TEXT, "from": st.one_of(NASTY_TEXT, SCALARS), "timestamp": SCALARS, "type": NASTY_TEXT},
        optional={
            "text": st.one_of(JSONISH, st.fixed_dictionaries({"body": SCALARS})),
            "from_user_id": NASTY_TEXT,
            "image": JSONISH,
            "reaction": JSONISH,
        },
    )


def _status():
    return st.fixed_dictionaries(
        {"id": NASTY_TEXT, "status": NASTY_TEXT},
        optional={"timestamp": SCALARS, "recipient_id": SCALARS, "errors": st.one_of(JSONISH, st.lists(JSONISH))},
    )


# Meta-shaped payloads whose leaves and lists are mutated: exercises the ingest paths, not only the parser.
META_SHAPED = st.builds(
    lambda contacts, messages, statuses, errors, extra, field, phone: {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "1",
                "changes": [
                    {
                        "field": field,
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {"phone_number_id": phone},
                            "contacts": contacts,
                            "messages": messages,
                            "statuses": statuses,
                            "errors": errors,
                            **extra,
                        },
                    }
                ],
            }
        ],
    },
    contacts=st.lists(
        st.fixed_dictionaries({}, optional={"wa_id": SCALARS, "user_id": SCALARS, "profile": JSONISH}), max_size=3
    ),
    messages=st.one_of(st.lists(_message(), max_size=3), JSONISH),
    statuses=st.one_of(st.lists(_status(), max_size=3), JSONISH),
    errors=st.one_of(st.lists(JSONISH, max_size=2), JSONISH),
    extra=st.dictionaries(st.text(max_size=8), JSONISH, max_size=2),
    field=st.one_of(st.just("messages"), NASTY_TEXT),
    phone=SCALARS,
)


def _encode(payload) -> bytes:
    try:
        return meta_json(payload)
    except ValueError:  # e.g. a lone surrogate that cannot be escaped as ASCII... fall back to Python's JSON
        return json.dumps(payload).encode("utf-8", "surrogatepass")


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
    return _post


@FUZZ_SETTINGS
@given(payload=META_SHAPED)
def test_signed_meta_shaped_garbage_is_never_a_server_error(post, payload):
    response = post(_encode(payload))
    assert response.status_code == 200  # a JSON object: always accepted and archived


@FUZZ_SETTINGS
@given(payload=JSONISH)
def test_signed_arbitrary_json_is_never_a_server_error(post, payload):
    post(_encode(payload))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=300))
def test_signed_arbitrary_bytes_are_never_a_server_error(post, body):
    post(body)


def test_the_database_is_still_consistent_after_garbage(client, post):
    """One deliberately hostile payload: NUL bytes, NaN, lone surrogates, huge ids; then a normal one works."""
    hostile = (
        b'{"entry":[{"changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"\\u0000"},'
        b'"contacts":[{"wa_id":"\\ud800","profile":{"name":"\\u0000x"}}],'
        b'"messages":[{"id":"' + b"w" * 300 + b'","from":"1","type":"text","text":{"body":NaN}},'
        b'{"id":"ok.1","from":"\\ud800","timestamp":"1e400","type":"\\u0000","text":{"body":"\\u0000"}}],'
        b'"statuses":[{"id":"s.1","status":"read","timestamp":Infinity,"errors":[{"code":1e999}]}]}}]}]}'
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
