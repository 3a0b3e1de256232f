"""Outbound messages: record what the provider accepted, then apply any receipt that raced ahead of it."""

from __future__ import annotations

from mv_os.db import database
from mv_os.messaging import conversations, locks, receipts
from mv_os.messaging.status import initial_outbound
from mv_os.models import Message, utcnow


def record_sent(conversation_id: int, wamid: str, body: str, provider_status: str | None, response: dict) -> Message:
    """Store a text the provider accepted as `wamid`, in one transaction under the wamid's lock (the webhook's
    receipts take the same lock), and return it as stored (a receipt may already have moved its status)."""
    now = utcnow()
    with database.atomic():
        locks.lock([locks.wamid_key(wamid)])
        message = Message.create(
            conversation=conversation_id,
            direction="out",
            wamid=wamid,
            type="text",
            text=body,
            raw={"request": {"type": "text"}, "response": response},
            status=initial_outbound(provider_status),
            sent_at=now,
        )
        receipts.promote([wamid])
        conversations.touch(conversation_id, now)
    return Message.get_by_id(message.id)
