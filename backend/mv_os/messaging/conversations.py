"""Conversations (one business number with one contact) and the inbound messages stored in them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from peewee import fn

from mv_os.db import database
from mv_os.messaging.contacts import Resolve
from mv_os.meta.payload import InboundMessage
from mv_os.models import Conversation, utcnow


def store_inbound(messages: Sequence[InboundMessage], phone_number_id: str, resolve: Resolve) -> None:
    """Create or move forward the conversations and insert the messages (new wamids only), in one statement
    whatever the number of messages.  Fixed SQL text with one array per column (prepared once per
    connection); text arrays go in binary (%b), so JSON's quotes need no array escaping."""
    # A conversation is created only with its first message: a wamid already stored (or met earlier in this
    # batch, from another sender, say) adds nothing, so it must not leave an empty conversation behind.  The
    # caller holds every wamid's lock (inbound._lock_keys), so the check cannot race another processor.
    messages = _new_wamids(messages)
    if not messages:
        return
    now = utcnow()
    rows, newest = [], {}
    for m in messages:
        contact_id = resolve(m.wa_id, m.user_id)
        sent_at = m.sent_at or now
        rows.append((contact_id, m.wamid, m.type, m.text, m.raw, sent_at))
        newest[contact_id] = max(sent_at, newest.get(contact_id, sent_at))
    contact_ids = sorted(newest)
    database.execute_sql(
        "WITH conv AS (INSERT INTO conversations (phone_number_id, contact_id, last_message_at, created_at) "
        "SELECT %s, c, t, %s FROM unnest(%b::int[], %b::timestamptz[]) AS u(c, t) "
        "ON CONFLICT (phone_number_id, contact_id) DO UPDATE "
        "SET last_message_at = GREATEST(conversations.last_message_at, EXCLUDED.last_message_at) "
        "RETURNING contact_id, id) "
        "INSERT INTO messages (conversation_id, direction, wamid, type, text, raw, status, sent_at, created_at, "
        "updated_at) SELECT conv.id, 'in', w, t, x, r::jsonb, 'received', s, %s, %s "
        "FROM unnest(%b::int[], %b::text[], %b::text[], %b::text[], %b::text[], %b::timestamptz[]) "
        "WITH ORDINALITY AS u(c, w, t, x, r, s, i) JOIN conv ON conv.contact_id = u.c ORDER BY u.i "
        "ON CONFLICT DO NOTHING",
        (
            phone_number_id,
            now,
            contact_ids,
            [newest[c] for c in contact_ids],
            now,
            now,
            *(list(column) for column in zip(*rows, strict=True)),
        ),
    )


def _new_wamids(messages: Sequence[InboundMessage]) -> list[InboundMessage]:
    first: dict[str, InboundMessage] = {}
    for m in messages:
        first.setdefault(m.wamid, m)
    stored = {
        row[0]
        for row in database.execute_sql("SELECT wamid FROM messages WHERE wamid = ANY(%s)", (list(first),)).fetchall()
    }
    return [m for wamid, m in first.items() if wamid not in stored]


def touch(conversation_id: int, at: dt.datetime) -> None:
    """Move the conversation's last message time forward to `at` (never back)."""
    Conversation.update(last_message_at=fn.GREATEST(Conversation.last_message_at, at)).where(
        Conversation.id == conversation_id
    ).execute()
