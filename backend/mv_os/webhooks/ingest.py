"""Turn archived WhatsApp webhook payloads into rows, inside the caller's transaction (the processor's).

Exactly once:
- the exact body was archived in `webhook_payloads` keyed by its SHA-256 on the request path (`intake`); a
  re-delivery of the same bytes only bumped `deliveries` and is never processed again;
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
import json
import logging
import math
from dataclasses import dataclass, field

from peewee import fn

from mv_os.db import database
from mv_os.models import (
    STATUS_RANK,
    Contact,
    Conversation,
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
    """What a batch stored, for the processor's log line."""

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
    if value.isascii() and "\x00" not in value:  # the common case, without a copy
        return value
    return value.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")


def clean_json(value) -> str:
    """`value` as JSON text PostgreSQL's jsonb accepts (see `clean`); serializes once in the common case."""
    try:
        rendered = json.dumps(value, ensure_ascii=False, allow_nan=False)
        rendered.encode("utf-8")  # lone surrogates raise here
    except (ValueError, UnicodeEncodeError, RecursionError):
        return json.dumps(clean(value), ensure_ascii=False)
    if "\\u0000" in rendered:
        return json.dumps(clean(value), ensure_ascii=False)
    return rendered


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


# Keys map to LOCK_STRIPES transaction-scoped advisory locks (LOCK_BASE + stripe): a batch of thousands of
# contacts and wamids then holds at most LOCK_STRIPES locks, far below PostgreSQL's shared lock table
# (max_locks_per_transaction x max_connections = 6,400 by default), at the price of the odd false conflict.
LOCK_STRIPES = 1024
LOCK_BASE = 0x6D76_0000_0000  # "mv" in the high bytes; the migration lock (db.MIGRATION_LOCK_KEY) is elsewhere


def _lock(keys) -> None:
    """Take every key's stripe lock in one round trip, in sorted order (no deadlocks: a transaction takes its
    locks once, up front; re-taking a stripe it already holds is a no-op)."""
    keys = sorted(set(keys))
    if len(keys) == 1:
        database.execute_sql(
            "SELECT pg_advisory_xact_lock(%s + (hashtextextended(%s, 0) & %s))", (LOCK_BASE, keys[0], LOCK_STRIPES - 1)
        )
    elif keys:
        database.execute_sql(
            "SELECT count(pg_advisory_xact_lock(s)) FROM (SELECT DISTINCT %s + (hashtextextended(k, 0) & %s) AS s "
            "FROM unnest(%b::text[]) AS k ORDER BY s) AS stripes",
            (LOCK_BASE, LOCK_STRIPES - 1, keys),
        )


def _contact_keys(wa_id: str | None, user_id: str | None) -> list[str]:
    return [k for k in (wa_id and f"contact:wa:{wa_id}", user_id and f"contact:user:{user_id}") if k]


def _wamid_key(wamid: str) -> str:
    return f"wamid:{wamid}"


def lock_wamid(wamid: str) -> None:
    """Serialize everything that touches this wamid until the transaction ends."""
    _lock([_wamid_key(wamid)])


# ---------------------------------------------------------------------------------------------- ingest


def changes_of(payload: dict) -> list:
    """The `changes` of every entry (or the payload itself when it is one bare change, like the sample that
    Meta's dashboard sends)."""
    if "entry" not in payload and "field" in payload and "value" in payload:
        return [payload]
    changes = []
    for entry in as_list(payload.get("entry")):
        changes.extend(as_list(as_dict(entry).get("changes")))
    return changes


def store_payloads(payloads: list[tuple[int, dict]], *, default_phone_number_id: str) -> IngestResult:
    """Store the messages, receipts and other events of archived payloads [(payload id, parsed body)], in
    arrival order, inside the caller's transaction.  Set-based across payloads: a batch of 200 payloads costs
    about the same statements as one (all locks in one query, contacts in one SELECT + one INSERT, messages
    and conversations in one statement per business phone number, receipts in one INSERT and one UPDATE)."""
    result = IngestResult()
    parsed = [(payload_id, changes_of(payload)) for payload_id, payload in payloads]
    _lock([key for _, changes in parsed for key in _keys_for(changes)])

    specs: list = []
    inbound_by_phone: dict[str, list] = {}
    later: list = []  # receipts and events, applied after the messages, in arrival order
    for payload_id, changes in parsed:
        for change in changes:
            change = as_dict(change)
            value = change.get("value")
            if change.get("field") == "messages" and isinstance(value, dict):
                _collect_messages_value(value, payload_id, default_phone_number_id, specs, inbound_by_phone, later)
            else:
                later.append(("event", payload_id, "unknown_field", text(change.get("field"), 128), None, change))

    resolve = upsert_contacts(specs)
    for phone_number_id, inbound in inbound_by_phone.items():
        _store_inbound_many(inbound, phone_number_id, resolve)
        result.counts["messages"] += len(inbound)

    receipts = []
    for kind, payload_id, *rest in later:
        if kind == "status":
            s, phone_number_id = rest
            receipt = _receipt(as_dict(s), payload_id)
            if receipt is not None:
                receipts.append(receipt)
            else:
                _event(payload_id, "invalid_status", field="statuses", phone_number_id=phone_number_id, raw=s)
                result.counts["other"] += 1
        else:
            event_kind, field_name, phone_number_id, raw = rest
            if event_kind == "error":
                e = as_dict(raw)
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
            else:
                _event(payload_id, event_kind, field=field_name, phone_number_id=phone_number_id, raw=raw)
                result.counts["other"] += 1
    if receipts:
        _store_receipts(receipts)
        result.counts["statuses"] += len(receipts)
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


def _collect_messages_value(value: dict, payload_id: int, default_phone: str, specs, inbound_by_phone, later):
    phone_number_id = text(as_dict(value.get("metadata")).get("phone_number_id"), 64) or default_phone
    for c in as_list(value.get("contacts")):
        c = as_dict(c)
        profile = as_dict(c.get("profile"))
        name = text(profile.get("name")) or text(profile.get("username"))
        specs.append((text(c.get("wa_id"), 64), text(c.get("user_id"), 128), name))
    for m in as_list(value.get("messages")):
        m = as_dict(m)
        wamid, wa_id, user_id = text(m.get("id"), 256), text(m.get("from"), 64), text(m.get("from_user_id"), 128)
        if not wamid or not (wa_id or user_id):
            later.append(("event", payload_id, "invalid_message", "messages", phone_number_id, m))
            continue
        inbound_by_phone.setdefault(phone_number_id, []).append((m, wamid, wa_id, user_id))
        specs.append((wa_id, user_id, None))
    for s in as_list(value.get("statuses")):
        later.append(("status", payload_id, s, phone_number_id))
    for e in as_list(value.get("errors")):
        later.append(("event", payload_id, "error", "errors", phone_number_id, e))
    for key in sorted(set(value) - KNOWN_VALUE_KEYS):
        later.append(("event", payload_id, "unknown_field", clean_str(f"messages.{key}")[:128], phone_number_id,
                      {key: value[key]}))  # fmt: skip


def upsert_contacts(specs: list[tuple[str | None, str | None, str | None]]):
    """Create or complete the contacts of (wa_id, user_id, name) triples, applied in order: a contact is found by
    `wa_id`, else by `user_id` (usernames/BSUID: no wa_id); a missing wa_id/user_id is filled in when no other
    contact has it; a new name replaces the old.  One SELECT and one multi-row INSERT (plus one UPDATE per
    changed contact, which is rare).  The caller holds the contact locks.  Returns `resolve(wa_id, user_id)
    -> contact id`."""
    specs = [(w, u, n[:256] if n else None) for w, u, n in specs if w or u]
    by_wa: dict[str, dict] = {}
    by_user: dict[str, dict] = {}
    if not specs:
        return lambda wa_id, user_id: None
    wa_ids = sorted({w for w, _, _ in specs if w})
    user_ids = sorted({u for _, u, _ in specs if u})
    for contact_id, wa_id, user_id, profile_name in database.execute_sql(
        "SELECT id, wa_id, user_id, profile_name FROM contacts "
        "WHERE wa_id = ANY(%b::text[]) OR user_id = ANY(%b::text[])",
        (wa_ids, user_ids),
    ).fetchall():
        row = {"id": contact_id, "wa_id": wa_id, "user_id": user_id, "profile_name": profile_name, "changed": False}
        if wa_id:
            by_wa[wa_id] = row
        if user_id:
            by_user[user_id] = row
    created: list[dict] = []
    for wa_id, user_id, name in specs:
        contact = (by_wa.get(wa_id) if wa_id else None) or (by_user.get(user_id) if user_id else None)
        if contact is None:
            contact = {"id": None, "wa_id": wa_id, "user_id": user_id, "profile_name": name or "", "changed": False}
            created.append(contact)
        else:
            if wa_id and not contact["wa_id"] and wa_id not in by_wa:
                contact["wa_id"], contact["changed"] = wa_id, True
            if user_id and not contact["user_id"] and user_id not in by_user:
                contact["user_id"], contact["changed"] = user_id, True
            if name and name != contact["profile_name"]:
                contact["profile_name"], contact["changed"] = name, True
        if contact["wa_id"]:
            by_wa[contact["wa_id"]] = contact
        if contact["user_id"]:
            by_user[contact["user_id"]] = contact
    now = utcnow()
    if created:
        ids = {
            (wa_id, user_id): contact_id
            for contact_id, wa_id, user_id in database.execute_sql(
                "INSERT INTO contacts (wa_id, user_id, profile_name, created_at, updated_at) "
                "SELECT w, u, n, %s, %s FROM unnest(%s::text[], %s::text[], %s::text[]) AS x(w, u, n) "
                "RETURNING id, wa_id, user_id",
                (now, now, [c["wa_id"] for c in created], [c["user_id"] for c in created],
                 [c["profile_name"] for c in created]),
            ).fetchall()
        }  # fmt: skip
        for contact in created:  # each new contact's wa_id and user_id are unique within the batch
            contact["id"] = ids[(contact["wa_id"], contact["user_id"])]
    for contact in {id(c): c for c in (*by_wa.values(), *by_user.values())}.values():
        if contact["changed"] and contact["id"] is not None and not any(contact is c for c in created):
            Contact.update(
                wa_id=contact["wa_id"], user_id=contact["user_id"], profile_name=contact["profile_name"], updated_at=now
            ).where(Contact.id == contact["id"]).execute()

    def resolve(wa_id: str | None, user_id: str | None) -> int | None:
        contact = (by_wa.get(wa_id) if wa_id else None) or (by_user.get(user_id) if user_id else None)
        return contact["id"] if contact else None

    return resolve


def _store_inbound_many(inbound: list, phone_number_id: str, resolve) -> None:
    """Conversations (created, or moved forward to the newest message) and messages (new wamids only): one
    statement each, whatever the number of messages."""
    now = utcnow()
    rows, newest = [], {}
    for m, wamid, wa_id, user_id in inbound:
        contact_id = resolve(wa_id, user_id)
        sent_at = parse_timestamp(m.get("timestamp")) or now
        message_type = (text(m.get("type")) or "unknown")[:32]
        rows.append((contact_id, wamid, message_type, message_text(m, message_type), clean_json(m), sent_at))
        newest[contact_id] = max(sent_at, newest.get(contact_id, sent_at))
    contact_ids = sorted(newest)
    # One statement: the conversations are created or moved forward, and the messages (new wamids only) are
    # inserted into them.  Fixed SQL text with one array per column (psycopg prepares it once per
    # connection); the text arrays go in binary (%b), so JSON's quotes need no array escaping.
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
            [r[0] for r in rows],
            [r[1] for r in rows],
            [r[2] for r in rows],
            [r[3] for r in rows],
            [r[4] for r in rows],
            [r[5] for r in rows],
        ),
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


def failure_reason(error: dict) -> str | None:
    """Meta's title plus `error_data.details` when present: the title alone ("Re-engagement message") does not
    tell an operator what happened; the details do ("...more than 24 hours have passed...")."""
    title = text(error.get("title")) or text(error.get("message"))
    details = text(as_dict(error.get("error_data")).get("details"))
    if title and details and details != title:
        return f"{title}: {details}"
    return title or details


def _receipt(s: dict, payload_id: int) -> tuple | None:
    """One `statuses[]` item as a message_status_events row, or None when it has no id or status."""
    wamid = text(s.get("id"), 256)
    status = text(s.get("status"), 32)
    if not wamid or not status:
        return None
    error = as_dict(next(iter(as_list(s.get("errors"))), None))
    return (
        wamid,
        status,
        parse_timestamp(s.get("timestamp")),
        text(s.get("recipient_id"), 128) or text(s.get("recipient_user_id"), 128),
        text(error.get("code"), 32),
        failure_reason(error),
        clean_json(s),
        payload_id,
    )


_RANKED = sorted(STATUS_RANK, key=STATUS_RANK.get)  # array_position() in SQL gives the same order


def _store_receipts(receipts: list[tuple]) -> None:
    """Every receipt of the batch in one INSERT (the first of each (wamid, status) wins, in arrival order), then
    every affected outbound message moved up (`_promote`).  The caller holds the wamids' locks."""
    now = utcnow()
    columns = list(zip(*receipts, strict=True))
    database.execute_sql(
        "INSERT INTO message_status_events (wamid, status, timestamp, recipient_id, error_code, error_title, raw, "
        "payload_id, received_at) SELECT w, s, t, r, c, e, j::jsonb, p, %s "
        "FROM unnest(%b::text[], %b::text[], %b::timestamptz[], %b::text[], %b::text[], %b::text[], %b::text[], "
        "%b::bigint[]) WITH ORDINALITY AS u(w, s, t, r, c, e, j, p, i) ORDER BY i "
        "ON CONFLICT (wamid, status) DO NOTHING",
        (now, *(list(column) for column in columns)),
    )
    _promote(sorted(set(columns[0])))


def _promote(wamids: list[str]) -> None:
    """Move each outbound message of `wamids` up to the highest receipt received so far, in one UPDATE: never
    down (ranks of `models.STATUS_RANK`), and `failed` keeps its error code and title."""
    database.execute_sql(
        "UPDATE messages AS m SET status = b.status, updated_at = %s, "
        "error_code = CASE WHEN b.status = 'failed' THEN b.error_code ELSE m.error_code END, "
        "error_title = CASE WHEN b.status = 'failed' THEN b.error_title ELSE m.error_title END "
        "FROM (SELECT DISTINCT ON (e.wamid) e.wamid, e.status, e.error_code, e.error_title, "
        "array_position(%b::text[], e.status) AS rank FROM message_status_events AS e "
        "WHERE e.wamid = ANY(%b::text[]) AND e.status = ANY(%b::text[]) ORDER BY e.wamid, rank DESC) AS b "
        "WHERE m.wamid = b.wamid AND m.direction = 'out' "
        "AND b.rank > COALESCE(array_position(%b::text[], m.status::text), 0)",
        (utcnow(), _RANKED, wamids, _RANKED, _RANKED),
    )


def apply_status(wamid: str) -> None:
    """Apply the receipts received so far to the outbound message `wamid` (the send path, after its insert: a
    receipt can race ahead of the send's commit).  Call inside a transaction; takes the wamid's lock."""
    lock_wamid(wamid)
    _promote([wamid])
