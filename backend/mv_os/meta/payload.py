"""Parse a WhatsApp webhook body into a `Batch` of frozen dataclasses: pure, no database.

Every `entry[]`, `changes[]`, `messages[]`, `statuses[]` and `errors[]` is read.  Anything of an unexpected
shape becomes an `Event` (stored raw), never an exception: only a body that is not a JSON object raises.
Items keep their order in the body, which is the order they are stored in."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from mv_os.meta.values import as_dict, as_list, clean, clean_json, clean_str, loads_strict, parse_timestamp, text

KNOWN_VALUE_KEYS = frozenset({"messaging_product", "metadata", "contacts", "messages", "statuses", "errors"})
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


@dataclass(frozen=True, slots=True)
class Contact:
    """A WhatsApp user named by the payload: `wa_id` (phone-based) and/or `user_id` (BSUID), maybe a name."""

    wa_id: str | None
    user_id: str | None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class InboundMessage:
    phone_number_id: str  # the business number it was sent to
    wamid: str
    wa_id: str | None
    user_id: str | None
    type: str
    text: str | None
    raw: str  # the message object as JSON text
    sent_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class Receipt:
    """One `statuses[]` item: a delivery status of an outbound message."""

    wamid: str
    status: str
    timestamp: dt.datetime | None
    recipient_id: str | None
    error_code: str | None
    error_title: str | None
    raw: str  # the status object as JSON text


@dataclass(frozen=True, slots=True)
class Event:
    """Anything that is not a message or a receipt: `errors[]` (kind "error"), unknown fields, invalid items."""

    kind: str
    field: str | None
    phone_number_id: str | None = None
    error_code: str | None = None
    error_title: str | None = None
    raw: Any = None  # cleaned JSON value


@dataclass(frozen=True, slots=True)
class Batch:
    contacts: tuple[Contact, ...] = ()  # contacts[] entries and message senders, in order
    messages: tuple[InboundMessage, ...] = ()
    receipts: tuple[Receipt, ...] = ()
    events: tuple[Event, ...] = ()

    @property
    def counts(self) -> dict[str, int]:
        """What the batch holds, for the processor's log line."""
        errors = sum(e.kind == "error" for e in self.events)
        return {
            "messages": len(self.messages),
            "statuses": len(self.receipts),
            "errors": errors,
            "other": len(self.events) - errors,
        }


def parse(body: bytes, default_phone_number_id: str = "") -> Batch:
    """A webhook body as a Batch; `default_phone_number_id` stands in for a change without `metadata`.
    Raises ValueError when the body is not JSON or not an object."""
    payload = loads_strict(body)
    if not isinstance(payload, dict):
        raise ValueError("a webhook body is a JSON object")
    return parse_payload(payload, default_phone_number_id)


def parse_payload(payload: dict, default_phone_number_id: str = "") -> Batch:
    contacts: list[Contact] = []
    messages: list[InboundMessage] = []
    receipts: list[Receipt] = []
    events: list[Event] = []
    for change in changes_of(payload):
        change = as_dict(change)
        value = change.get("value")
        if change.get("field") == "messages" and isinstance(value, dict):
            phone = text(as_dict(value.get("metadata")).get("phone_number_id"), 64) or default_phone_number_id
            _read_value(value, phone, contacts, messages, receipts, events)
        else:
            events.append(Event("unknown_field", text(change.get("field"), 128), raw=clean(change)))
    return Batch(tuple(contacts), tuple(messages), tuple(receipts), tuple(events))


def changes_of(payload: dict) -> list:
    """The `changes` of every entry (or the payload itself when it is one bare change, like the sample that
    Meta's dashboard sends)."""
    if "entry" not in payload and "field" in payload and "value" in payload:
        return [payload]
    changes = []
    for entry in as_list(payload.get("entry")):
        changes.extend(as_list(as_dict(entry).get("changes")))
    return changes


def _read_value(value: dict, phone: str, contacts: list, messages: list, receipts: list, events: list) -> None:
    for c in as_list(value.get("contacts")):
        c = as_dict(c)
        profile = as_dict(c.get("profile"))
        name = text(profile.get("name")) or text(profile.get("username"))
        contacts.append(Contact(text(c.get("wa_id"), 64), text(c.get("user_id"), 128), name))
    for m in as_list(value.get("messages")):
        m = as_dict(m)
        message = _message(m, phone)
        if message is None:
            events.append(Event("invalid_message", "messages", phone, raw=clean(m)))
            continue
        messages.append(message)
        contacts.append(Contact(message.wa_id, message.user_id))
    for s in as_list(value.get("statuses")):
        receipt = _receipt(as_dict(s))
        if receipt is None:
            events.append(Event("invalid_status", "statuses", phone, raw=clean(s)))
        else:
            receipts.append(receipt)
    for e in as_list(value.get("errors")):
        e = as_dict(e)
        title = text(e.get("title")) or text(e.get("message"))
        events.append(Event("error", "errors", phone, text(e.get("code"), 32), title, clean(e)))
    for key in sorted(set(value) - KNOWN_VALUE_KEYS):
        events.append(Event("unknown_field", clean_str(f"messages.{key}")[:128], phone, raw=clean({key: value[key]})))


def _message(m: dict, phone: str) -> InboundMessage | None:
    wamid, wa_id, user_id = text(m.get("id"), 256), text(m.get("from"), 64), text(m.get("from_user_id"), 128)
    if not wamid or not (wa_id or user_id):
        return None
    message_type = (text(m.get("type")) or "unknown")[:32]
    return InboundMessage(
        phone, wamid, wa_id, user_id, message_type, message_text(m, message_type), clean_json(m),
        parse_timestamp(m.get("timestamp")),
    )  # fmt: skip


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
    """Meta's title plus `error_data.details`: the title alone ("Re-engagement message") does not tell an
    operator what happened; the details do."""
    title = text(error.get("title")) or text(error.get("message"))
    details = text(as_dict(error.get("error_data")).get("details"))
    if title and details and details != title:
        return f"{title}: {details}"
    return title or details


def _receipt(s: dict) -> Receipt | None:
    wamid = text(s.get("id"), 256)
    status = text(s.get("status"), 32)
    if not wamid or not status:
        return None
    error = as_dict(next(iter(as_list(s.get("errors"))), None))
    return Receipt(
        wamid,
        status,
        parse_timestamp(s.get("timestamp")),
        text(s.get("recipient_id"), 128) or text(s.get("recipient_user_id"), 128),
        text(error.get("code"), 32),
        failure_reason(error),
        clean_json(s),
    )
