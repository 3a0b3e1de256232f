"""The webhook parser on its own, without a database: Meta's fixtures parse into the expected batch, and no
signed body, however malformed, makes it raise or yield a value PostgreSQL would refuse."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mv_os.meta.payload import Contact, parse, parse_payload
from tests.support.strategies import JSONISH, META_SHAPED
from tests.support.webhooks import fixture

pytestmark = pytest.mark.unit

DEFAULT_PHONE = "100000000000001"


def test_an_inbound_text_becomes_one_message_and_its_named_contact():
    batch = parse(fixture("inbound_text.json"), DEFAULT_PHONE)
    (message,) = batch.messages
    assert message.type == "text" and message.text and message.wamid.startswith("wamid.")
    assert message.phone_number_id == "106540352242922"
    assert message.sent_at is not None and message.sent_at.tzinfo is dt.UTC
    assert json.loads(message.raw)["id"] == message.wamid
    assert batch.contacts[0].name and batch.contacts[0].wa_id == message.wa_id
    assert batch.counts == {"messages": 1, "statuses": 0, "errors": 0, "other": 0}


def test_a_batch_keeps_every_entry_change_and_message_in_order():
    batch = parse(fixture("batch_multi_entry.json"), DEFAULT_PHONE)
    assert [m.wamid for m in batch.messages][:5] == [f"wamid.BATCH.000{i}" for i in range(1, 6)]
    assert {m.phone_number_id for m in batch.messages} == {"106540352242922", "106540352242923"}
    assert batch.receipts  # the second entry also carries statuses


def test_a_username_contact_without_a_phone_number_is_kept_by_user_id():
    batch = parse(fixture("inbound_user_id_only.json"), DEFAULT_PHONE)
    (message,) = batch.messages
    assert message.wa_id is None and message.user_id == "BR.1502576394655843"
    assert Contact(None, "BR.1502576394655843", "Maria L\u00f3pez") in batch.contacts


def test_a_failed_status_carries_meta_code_and_the_details_an_operator_needs():
    (receipt,) = parse(fixture("status_4_failed.json")).receipts
    assert receipt.status == "failed" and receipt.error_code == "131047"
    assert receipt.error_title.startswith("Re-engagement message: Message failed to send because more than 24")
    assert receipt.recipient_id == "4915112345678"


def test_errors_and_unknown_fields_become_events_not_exceptions():
    errors = parse(fixture("errors_only.json"))
    assert [(e.kind, e.error_code) for e in errors.events] == [("error", "131051")]
    unknown = parse(fixture("unknown_field_account_update.json"))
    assert [e.kind for e in unknown.events] == ["unknown_field"] and not unknown.messages


def test_the_dashboard_sample_and_a_bare_change_parse_alike():
    sample = parse(fixture("dashboard_test_sample.json"))
    bare = parse_payload(json.loads(fixture("dashboard_test_sample.json"))["entry"][0]["changes"][0])
    assert sample.messages == bare.messages and len(sample.messages) == 1


def test_a_change_without_metadata_is_for_the_default_phone_number():
    payload = {"field": "messages", "value": {"messages": [{"id": "w.1", "from": "49151", "type": "text"}]}}
    (message,) = parse_payload(payload, DEFAULT_PHONE).messages
    assert message.phone_number_id == DEFAULT_PHONE and message.text is None and message.sent_at is None


def test_items_without_an_id_or_sender_are_kept_as_events():
    value = {"messages": [{"id": "w.1"}, {"from": "49151"}], "statuses": [{"id": "w.2"}, {"status": "read"}]}
    batch = parse_payload({"field": "messages", "value": value})
    assert not batch.messages and not batch.receipts
    assert [e.kind for e in batch.events] == ["invalid_message"] * 2 + ["invalid_status"] * 2


@pytest.mark.parametrize("body", [b"[]", b"null", b"not json", b"\xff"])
def test_a_body_that_is_not_a_json_object_is_refused(body):
    with pytest.raises(ValueError):  # noqa: PT011 - JSONDecodeError and UnicodeDecodeError are ValueErrors
        parse(body)


def _storable(value) -> bool:
    """What PostgreSQL's text and jsonb accept: no NUL, no lone surrogate, no NaN/Infinity."""
    if isinstance(value, str):
        return "\x00" not in value and value.encode("utf-8", "strict") is not None
    if isinstance(value, float):
        return value == value and value not in (float("inf"), float("-inf"))
    if isinstance(value, dict):
        return all(_storable(k) and _storable(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return all(_storable(v) for v in value)
    return True


def _check(batch) -> None:
    for item in (*batch.contacts, *batch.messages, *batch.receipts, *batch.events):
        for name in item.__slots__:
            value = getattr(item, name)
            assert _storable(value), (name, value)
    for item in (*batch.messages, *batch.receipts):  # their raw is JSON text, an event's a JSON value
        assert _storable(json.loads(item.raw))
    for m in batch.messages:
        assert m.wamid and len(m.wamid) <= 256 and (m.wa_id or m.user_id) and len(m.type) <= 32
    for r in batch.receipts:
        assert r.wamid and len(r.wamid) <= 256 and r.status and len(r.status) <= 32
    assert sum(batch.counts.values()) == len(batch.messages) + len(batch.receipts) + len(batch.events)


@settings(max_examples=100, deadline=None)
@given(payload=META_SHAPED)
def test_meta_shaped_garbage_parses_into_storable_values(payload):
    batch = parse_payload(payload, DEFAULT_PHONE)
    _check(batch)
    change = payload["entry"][0]["changes"][0]
    if change["field"] == "messages":  # every item of messages[] is either stored or kept as an event
        items = change["value"]["messages"] if isinstance(change["value"]["messages"], list) else []
        assert len(batch.messages) + sum(e.kind == "invalid_message" for e in batch.events) == len(items)


@settings(max_examples=100, deadline=None)
@given(
    payload=st.dictionaries(st.text(max_size=8), JSONISH, max_size=5) | JSONISH.filter(lambda v: isinstance(v, dict))
)
def test_any_json_object_parses_into_storable_values(payload):
    _check(parse_payload(payload, DEFAULT_PHONE))


@settings(max_examples=100, deadline=None)
@given(body=st.binary(max_size=300))
def test_arbitrary_bytes_parse_or_raise_value_error(body):
    try:
        batch = parse(body)
    except (ValueError, RecursionError):
        return
    _check(batch)
