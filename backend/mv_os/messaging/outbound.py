"""Outbound messages, stored before the provider is called: `pending` (stored, no outcome yet), then the
provider's answer is recorded on the same row.

- `store_pending` inserts the row, or finds the one a previous POST with the same `Idempotency-Key` made;
- `claim` lets exactly one request send a pending row that has no outcome: a new one, one whose previous
  attempt ended without an answer (a timeout, Meta unavailable, our credentials refused: kept `pending` with
  that reason, so the inbox shows it and a retry with the same key sends it), or one whose sender vanished;
- `record_sent` / `record_failed` / `record_unsent` store the outcome."""

from __future__ import annotations

import datetime as dt

from mv_os.db import database
from mv_os.messaging import conversations, locks, receipts
from mv_os.messaging.status import initial_outbound
from mv_os.models import Message, utcnow


def store_pending(conversation_id: int, body: str, key: str | None) -> tuple[Message, bool]:
    """The message as stored, and whether this call created it (False: an earlier POST with `key` did)."""
    now = utcnow()
    with database.atomic():
        row = database.execute_sql(
            "INSERT INTO messages (conversation_id, direction, type, text, raw, status, sent_at, created_at, "
            "updated_at, idempotency_key) VALUES (%s, 'out', 'text', %s, %s::jsonb, 'pending', %s, %s, %s, %s) "
            "ON CONFLICT (conversation_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING "
            "RETURNING id",
            (conversation_id, body, '{"request": {"type": "text"}}', now, now, now, key),
        ).fetchone()
        if row is not None:
            conversations.touch(conversation_id, now)
            return Message.get_by_id(row[0]), True
    existing = Message.get(Message.conversation == conversation_id, Message.idempotency_key == key)
    return existing, False


def claim(message_id: int, stale_after: float) -> bool:
    """Take the right to send a pending row without an outcome: its last attempt ended without an answer, or
    began more than `stale_after` seconds ago (that sender is gone).  Only one caller gets True."""
    stale = utcnow() - dt.timedelta(seconds=stale_after)
    claimed = (
        Message.update(error_code=None, error_title=None, updated_at=utcnow())
        .where(
            (Message.id == message_id)
            & (Message.status == "pending")
            & Message.wamid.is_null()
            & (Message.error_code.is_null(False) | (Message.updated_at < stale))
        )
        .execute()
    )
    return claimed == 1


def record_sent(message_id: int, wamid: str, provider_status: str | None, response: dict) -> Message:
    """The provider accepted the message as `wamid`: under the wamid's lock (the webhook's receipts take the
    same one), then any receipt that raced ahead of this commit is applied."""
    with database.atomic():
        locks.lock([locks.wamid_key(wamid)])
        Message.update(
            wamid=wamid,
            status=initial_outbound(provider_status),
            raw={"request": {"type": "text"}, "response": response},
            error_code=None,
            error_title=None,
            updated_at=utcnow(),
        ).where(Message.id == message_id).execute()
        receipts.promote([wamid])
    return Message.get_by_id(message_id)


def record_failed(message_id: int, code: str | None, title: str) -> None:
    """The provider refused this message for good: `failed`, terminal."""
    _record(message_id, "failed", code, title)


def record_unsent(message_id: int, code: str, title: str) -> None:
    """No outcome (timeout, provider unavailable, our credentials refused): stays `pending` with the reason;
    a retry with the same Idempotency-Key sends it."""
    _record(message_id, "pending", code, title)


def _record(message_id: int, status: str, code: str | None, title: str) -> None:
    Message.update(status=status, error_code=code or status, error_title=title, updated_at=utcnow()).where(
        Message.id == message_id
    ).execute()
