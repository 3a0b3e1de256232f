"""Turn a verified WhatsApp webhook payload into rows, inside the caller's transaction.

Exactly once:
- the exact body is archived in `webhook_payloads` keyed by its SHA-256; a re-delivery of the same bytes
  only bumps `deliveries` (concurrent duplicates serialize on that unique key) and ingests nothing;
- inbound messages are unique on `wamid`, receipts on (`wamid`, `status`), both inserted with
  ON CONFLICT DO NOTHING, so the same message inside different payloads is stored once too.

Statuses never go backwards: a message's status is recomputed from all its receipts and only ever moves up
`models.STATUS_RANK` (`failed` is terminal and keeps its error code).  Receipts for a wamid we do not know
yet are kept and applied when the outbound message is stored (`apply_status`).  Contacts and wamids are
serialized with transaction-scoped advisory locks, taken in sorted order.

Input is untrusted (signed, but its shape is Meta's to change): anything of an unexpected shape is skipped
or stored raw in `webhook_events`, never an error.  The archived bytes always hold the whole payload.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import math
from dataclasses import dataclass, field

from peewee import fn

from mv_os.db import database
from mv_os.models import (
    STATUS_RANK,
    Contact,
    Conversation,
    Message,
    MessageStatusEvent,
    WebhookEvent,
    utcnow,
)

log = logging.getLogger("mv_os.webhooks.ingest")

KNOWN_VALUE_KEYS = {"messaging_product", "metadata", "contacts", "messages", "statuses", "errors"}
MAX_RAW_DEPTH = 100
# Where the readable text of each known message type lives.
_TEXT_PATHS = {
    "text": ("text", "body"),
    "image": ("image", "caption"),
    "video": ("video", "caption"),
    "document": ("document", "caption"),
    "reaction": ("reaction", "emoji"),
    "button": ("button", "text"),
    "location": ("location", "name"),
    "system": ("system", "body"),
}


@dataclass
class IngestResult:
    payload_id: int
    duplicate: bool = False
    counts: dict = field(default_factory=lambda: dict.fromkeys(("messages", "statuses", "errors", "other"), 0))


# --------------------------------------------------------------------------------------------- cleaning


def clean(value, depth: int = 0):
    """JSON that PostgreSQL accepts: no NUL characters, no lone surrogates, no NaN/Infinity."""
    if depth > MAX_RAW_DEPTH:
        return None
    if isinstance(value, str):
        return clean_str(value)
    if isinstance(value, bool) or value is None or isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {clean_str(str(k)): clean(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [clean(v, depth + 1) for v in value]
    return None


def clean_str(value: str) -> str:
    return value.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")


def text(value, max_length: int | None = None) -> str | None:
    """A scalar as a clean string (None for missing/empty/containers), optionally refused when too long."""
    if value is None or isinstance(value, (dict, list, bool)):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    result = clean_str(str(value)).strip()
    if not result or (max_length is not None and len(result) > max_length):
        return None
    return result


def as_list(value) -> list:
    return value if isinstance(value, list) else []


def as_dict(value) -> dict:
    return value if isinstance(value, dict) else {}


def parse_timestamp(value) -> dt.datetime | None:
    """Meta's timestamps are strings of Unix seconds."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    try:
        return dt.datetime.fromtimestamp(int(value), dt.UTC)
    except (ValueError, OverflowError, OSError):
        return None


# ----------------------------------------------------------------------------------------------- locks


def _lock(keys) -> None:
    for key in sorted(set(keys)):
        database.execute_sql("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (key,))


def _contact_keys(wa_id: str | None, user_id: str | None) -> list[str]:
    return [k for k in (wa_id and f"contact:wa:{wa_id}", user_id and f"contact:user:{user_id}") if k]


def _wamid_key(wamid: str) -> str:
    return f"wamid:{wamid}"


def lock_wamid(wamid: str) -> None:
    """Serialize everything that touches this wamid until the transaction ends."""
    _lock([_wamid_key(wamid)])


# ---------------------------------------------------------------------------------------------- ingest


def archive(body: bytes) -> tuple[int, bool]:
    """Store the exact bytes (or count a re-delivery).  Returns (payload id, first time seen)."""
    digest = hashlib.sha256(body).hexdigest()
    now = utcnow()
    row = database.execute_sql(
        "INSERT INTO webhook_payloads (sha256, body, size, deliveries, first_received_at, last_received_at) "
        "VALUES (%s, %s, %s, 1, %s, %s) "
        "ON CONFLICT (sha256) DO UPDATE SET deliveries = webhook_payloads.deliveries + 1, "
        "last_received_at = EXCLUDED.last_received_at "
        "RETURNING id, (xmax = 0) AS inserted",
        (digest, body, len(body), now, now),
    ).fetchone()
    return int(row[0]), bool(row[1])


def ingest(body: bytes, payload: dict, *, default_phone_number_id: str) -> IngestResult:
    payload_id, first_time = archive(body)
    result = IngestResult(payload_id=payload_id, duplicate=not first_time)
    if not first_time:
        return result

    changes = []
    if "entry" not in payload and "field" in payload and "value" in payload:
        changes.append(payload)  # a bare change, like the sample shown in Meta's dashboard
    for entry in as_list(payload.get("entry")):
        changes.extend(as_list(as_dict(entry).get("changes")))

    _lock(_keys_for(changes))
    for change in changes:
        change = as_dict(change)
        value = change.get("value")
        if change.get("field") == "messages" and isinstance(value, dict):
            _ingest_messages_value(value, payload_id, default_phone_number_id, result)
        else:
            _event(payload_id, "unknown_field", field=text(change.get("field"), 128), raw=change)
            result.counts["other"] += 1
    return result


def _keys_for(changes: list) -> list[str]:
    """Every lock this payload will need, so they are all taken up front in one sorted order."""
    keys: list[str] = []
    for change in changes:
        value = as_dict(as_dict(change).get("value"))
        for c in as_list(value.get("contacts")):
            c = as_dict(c)
            keys += _contact_keys(text(c.get("wa_id"), 64), text(c.get("user_id"), 128))
        for m in as_list(value.get("messages")):
            m = as_dict(m)
            keys += _contact_keys(text(m.get("from"), 64), text(m.get("from_user_id"), 128))
        for s in as_list(value.get("statuses")):
            wamid = text(as_dict(s).get("id"), 256)
            if wamid:
                keys.append(_wamid_key(wamid))
    return keys


def _event(payload_id: int, kind: str, *, field=None, phone_number_id=None, code=None, title=None, raw=None):
    WebhookEvent.create(
        payload=payload_id,
        kind=kind,
        field=field,
        phone_number_id=phone_number_id,
        error_code=code,
        error_title=title,
        raw=clean(raw),
    )


def _ingest_messages_value(value: dict, payload_id: int, default_phone: str, result: IngestResult) -> None:
    phone_number_id = text(as_dict(value.get("metadata")).get("phone_number_id"), 64) or default_phone

    contacts: dict[str, Contact] = {}
    for c in as_list(value.get("contacts")):
        c = as_dict(c)
        profile = as_dict(c.get("profile"))
        contact = upsert_contact(
            wa_id=text(c.get("wa_id"), 64),
            user_id=text(c.get("user_id"), 128),
            name=text(profile.get("name")) or text(profile.get("username")),
        )
        if contact is not None:
            for key in (contact.wa_id, contact.user_id):
                if key:
                    contacts[key] = contact

    for m in as_list(value.get("messages")):
        if _store_inbound(as_dict(m), phone_number_id, contacts):
            result.counts["messages"] += 1
        else:
            _event(payload_id, "invalid_message", field="messages", phone_number_id=phone_number_id, raw=m)
            result.counts["other"] += 1

    for s in as_list(value.get("statuses")):
        if _store_status(as_dict(s), payload_id):
            result.counts["statuses"] += 1
        else:
            _event(payload_id, "invalid_status", field="statuses", phone_number_id=phone_number_id, raw=s)
            result.counts["other"] += 1

    for e in as_list(value.get("errors")):
        e = as_dict(e)
        _event(
            payload_id,
            "error",
            field="errors",
            phone_number_id=phone_number_id,
            code=text(e.get("code"), 32),
            title=text(e.get("title")) or text(e.get("message")),
            raw=e,
        )
        result.counts["errors"] += 1

    for key in sorted(set(value) - KNOWN_VALUE_KEYS):
        _event(
            payload_id,
            "unknown_field",
            field=clean_str(f"messages.{key}")[:128],
            phone_number_id=phone_number_id,
            raw={key: value[key]},
        )
        result.counts["other"] += 1


def upsert_contact(*, wa_id: str | None, user_id: str | None, name: str | None) -> Contact | None:
    """Find a contact by `wa_id`, else by `user_id` (usernames/BSUID: no wa_id); create or complete it."""
    if not wa_id and not user_id:
        return None
    _lock(_contact_keys(wa_id, user_id))
    contact = Contact.get_or_none(Contact.wa_id == wa_id) if wa_id else None
    if contact is None and user_id:
        contact = Contact.get_or_none(Contact.user_id == user_id)
    name = name[:256] if name else None
    if contact is None:
        return Contact.create(wa_id=wa_id, user_id=user_id, profile_name=name or "")
    changed = False
    if wa_id and not contact.wa_id and not Contact.select().where(Contact.wa_id == wa_id).exists():
        contact.wa_id, changed = wa_id, True
    if user_id and not contact.user_id and not Contact.select().where(Contact.user_id == user_id).exists():
        contact.user_id, changed = user_id, True
    if name and name != contact.profile_name:
        contact.profile_name, changed = name, True
    if changed:
        contact.updated_at = utcnow()
        contact.save()
    return contact


def conversation_for(phone_number_id: str, contact: Contact, at: dt.datetime) -> int:
    Conversation.insert(
        phone_number_id=phone_number_id, contact=contact.id, last_message_at=at
    ).on_conflict_ignore().execute()
    return (
        Conversation.select(Conversation.id)
        .where((Conversation.phone_number_id == phone_number_id) & (Conversation.contact == contact.id))
        .scalar()
    )


def touch_conversation(conversation_id: int, at: dt.datetime) -> None:
    Conversation.update(last_message_at=fn.GREATEST(Conversation.last_message_at, at)).where(
        Conversation.id == conversation_id
    ).execute()


def message_text(message: dict, message_type: str) -> str | None:
    path = _TEXT_PATHS.get(message_type)
    if path is None:
        if message_type == "interactive":
            interactive = as_dict(message.get("interactive"))
            reply = as_dict(interactive.get("button_reply")) or as_dict(interactive.get("list_reply"))
            return text(reply.get("title"))
        return None
    return text(as_dict(message.get(path[0])).get(path[1]))


def _store_inbound(m: dict, phone_number_id: str, contacts: dict[str, Contact]) -> bool:
    wamid = text(m.get("id"), 256)
    wa_id = text(m.get("from"), 64)
    user_id = text(m.get("from_user_id"), 128)
    if not wamid or not (wa_id or user_id):
        return False
    contact = contacts.get(wa_id or "") or contacts.get(user_id or "")
    if contact is None:
        contact = upsert_contact(wa_id=wa_id, user_id=user_id, name=None)
        contacts.update({k: contact for k in (contact.wa_id, contact.user_id) if k})
    sent_at = parse_timestamp(m.get("timestamp")) or utcnow()
    message_type = (text(m.get("type")) or "unknown")[:32]
    conversation_id = conversation_for(phone_number_id, contact, sent_at)
    inserted = (
        Message.insert(
            conversation=conversation_id,
            direction="in",
            wamid=wamid,
            type=message_type,
            text=message_text(m, message_type),
            raw=clean(m),
            status="received",
            sent_at=sent_at,
        )
        .on_conflict_ignore()
        .execute()
    )
    if inserted:
        touch_conversation(conversation_id, sent_at)
    return True


def _store_status(s: dict, payload_id: int) -> bool:
    wamid = text(s.get("id"), 256)
    status = text(s.get("status"), 32)
    if not wamid or not status:
        return False
    error = as_dict(next(iter(as_list(s.get("errors"))), None))
    MessageStatusEvent.insert(
        wamid=wamid,
        status=status,
        timestamp=parse_timestamp(s.get("timestamp")),
        recipient_id=text(s.get("recipient_id"), 128) or text(s.get("recipient_user_id"), 128),
        error_code=text(error.get("code"), 32),
        error_title=text(error.get("title")) or text(error.get("message")),
        raw=clean(s),
        payload=payload_id,
    ).on_conflict_ignore().execute()
    apply_status(wamid)
    return True


def apply_status(wamid: str) -> str | None:
    """Move an outbound message's status up to the highest receipt received so far (never down).
    Call inside a transaction; takes the wamid's advisory lock.  Returns the status now stored."""
    lock_wamid(wamid)
    message = Message.select().where((Message.wamid == wamid) & (Message.direction == "out")).for_update().first()
    if message is None:
        return None
    best = None
    for event in MessageStatusEvent.select().where(MessageStatusEvent.wamid == wamid):
        if event.status in STATUS_RANK and (best is None or STATUS_RANK[event.status] > STATUS_RANK[best.status]):
            best = event
    if best is None or STATUS_RANK[best.status] <= STATUS_RANK.get(message.status, -1):
        return message.status
    message.status = best.status
    if best.status == "failed":
        message.error_code = best.error_code
        message.error_title = best.error_title
    message.updated_at = utcnow()
    message.save()
    return message.status
