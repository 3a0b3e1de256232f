"""Store parsed webhook batches inside the caller's transaction: set-based, so a batch of many payloads costs
about the statements of one (all locks in one query, contacts in one SELECT + one INSERT, messages and
conversations in one statement per business number, receipts in one INSERT and one UPDATE).

Exactly once: inbound messages are unique on `wamid`, receipts on (`wamid`, `status`), both inserted with
ON CONFLICT DO NOTHING, so the same message inside different payloads is stored once."""

from __future__ import annotations

from collections.abc import Sequence

from mv_os.messaging import contacts, conversations, locks, receipts
from mv_os.meta.payload import Batch, Event, InboundMessage
from mv_os.models import WebhookEvent

Parsed = Sequence[tuple[int, Batch]]  # (archived payload id, its parsed batch), in arrival order


def store(parsed: Parsed) -> dict[str, int]:
    """Store every batch's contacts, messages, events and receipts.  Returns the counts of what they held."""
    locks.lock(_lock_keys(parsed))
    resolve = contacts.upsert(c for _, batch in parsed for c in batch.contacts)
    by_phone: dict[str, list[InboundMessage]] = {}
    for _, batch in parsed:
        for m in batch.messages:
            by_phone.setdefault(m.phone_number_id, []).append(m)
    for phone_number_id, messages in by_phone.items():
        conversations.store_inbound(messages, phone_number_id, resolve)
    for payload_id, batch in parsed:
        for event in batch.events:
            _store_event(payload_id, event)
    receipts.store([(r, payload_id) for payload_id, batch in parsed for r in batch.receipts])
    counts = dict.fromkeys(("messages", "statuses", "errors", "other"), 0)
    for _, batch in parsed:
        for key, n in batch.counts.items():
            counts[key] += n
    return counts


def _lock_keys(parsed: Parsed) -> list[str]:
    """Every lock the batches need, so all are taken up front in one sorted order."""
    keys: list[str] = []
    for _, batch in parsed:
        for c in batch.contacts:
            keys += locks.contact_keys(c.wa_id, c.user_id)
        keys += (locks.wamid_key(r.wamid) for r in batch.receipts)
        keys += (locks.wamid_key(m.wamid) for m in batch.messages)  # conversations.store_inbound's check
    return keys


def _store_event(payload_id: int, event: Event) -> None:
    WebhookEvent.create(
        payload=payload_id,
        kind=event.kind,
        field=event.field,
        phone_number_id=event.phone_number_id,
        error_code=event.error_code,
        error_title=event.error_title,
        raw=event.raw,
    )
