"""peewee models for the messaging domain, defined at import time and bound to `db.database` (a proxy that
`create_app` initializes).  The schema itself is created by the numbered files in `migrations/`."""

from __future__ import annotations

import datetime as dt

from peewee import (
    SQL,
    AutoField,
    BigAutoField,
    BlobField,
    CharField,
    Check,
    ForeignKeyField,
    IntegerField,
    Model,
    TextField,
)
from playhouse.postgres_ext import BinaryJSONField, DateTimeTZField

from mv_os.db import database


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


DIRECTIONS = ("in", "out")


class BaseModel(Model):
    class Meta:
        database = database
        legacy_table_names = False


class User(BaseModel):
    id = AutoField()
    email = CharField(max_length=320, unique=True)  # stored lower-cased
    password_hash = CharField(max_length=255)
    display_name = CharField(max_length=200, default="")
    created_at = DateTimeTZField(default=utcnow)
    token_version = IntegerField(default=0)  # in every token; bumped by logout and a password change

    class Meta:
        table_name = "users"


class Contact(BaseModel):
    """A WhatsApp user.  `wa_id` is the phone-based id; `user_id` is Meta's business-scoped user id, which is
    all a webhook carries for users with a username and no shared phone number."""

    id = AutoField()
    wa_id = CharField(max_length=64, null=True, unique=True)
    user_id = CharField(max_length=128, null=True, unique=True)
    profile_name = CharField(max_length=256, default="")
    created_at = DateTimeTZField(default=utcnow)
    updated_at = DateTimeTZField(default=utcnow)

    class Meta:
        table_name = "contacts"
        constraints = [Check("wa_id IS NOT NULL OR user_id IS NOT NULL")]

    @property
    def label(self) -> str:
        return self.profile_name or self.wa_id or self.user_id or ""


class Conversation(BaseModel):
    """One business phone number talking with one contact."""

    id = AutoField()
    phone_number_id = CharField(max_length=64)
    contact = ForeignKeyField(Contact, backref="conversations", on_delete="CASCADE")
    last_message_at = DateTimeTZField(default=utcnow, index=True)
    created_at = DateTimeTZField(default=utcnow)

    class Meta:
        table_name = "conversations"
        indexes = ((("phone_number_id", "contact"), True),)


class Message(BaseModel):
    id = BigAutoField()
    conversation = ForeignKeyField(Conversation, backref="messages", on_delete="CASCADE")
    direction = CharField(max_length=3, constraints=[SQL("CHECK (direction IN ('in', 'out'))")])
    wamid = CharField(max_length=256, null=True, unique=True)
    type = CharField(max_length=32, default="text")
    text = TextField(null=True)
    raw = BinaryJSONField(null=True)
    status = CharField(max_length=16, default="pending")
    error_code = CharField(max_length=32, null=True)
    error_title = TextField(null=True)
    sent_at = DateTimeTZField(default=utcnow)  # provider timestamp for inbound, creation time for outbound
    idempotency_key = TextField(null=True)  # outbound: the sender's Idempotency-Key, unique per conversation
    created_at = DateTimeTZField(default=utcnow)
    updated_at = DateTimeTZField(default=utcnow)

    class Meta:
        table_name = "messages"
        indexes = ((("conversation", "sent_at"), False),)


class WebhookPayload(BaseModel):
    """Archive of every accepted (signed, parsed) webhook body: the exact bytes and their SHA-256, for audit
    and replay.  A re-delivery of the same bytes bumps `deliveries` instead of being processed again.  The
    request path only inserts here (200 after that commit); the processor fills `processed_at`."""

    id = BigAutoField()
    sha256 = CharField(max_length=64, unique=True)
    body = BlobField()
    size = IntegerField()
    deliveries = IntegerField(default=1)
    first_received_at = DateTimeTZField(default=utcnow)
    last_received_at = DateTimeTZField(default=utcnow)
    processed_at = DateTimeTZField(null=True)  # NULL: its messages/receipts are still to be stored
    processing_error = TextField(null=True)  # set when it could not be processed (kept for a replay)

    class Meta:
        table_name = "webhook_payloads"


class MessageStatusEvent(BaseModel):
    """One delivery receipt per (wamid, status), whatever order they arrive in.  Kept even when the message
    is not (yet) known, so a status that races ahead of the send's commit is applied when the message lands."""

    id = BigAutoField()
    wamid = CharField(max_length=256)
    status = CharField(max_length=32)
    timestamp = DateTimeTZField(null=True)
    recipient_id = CharField(max_length=128, null=True)
    error_code = CharField(max_length=32, null=True)
    error_title = TextField(null=True)
    raw = BinaryJSONField()
    payload = ForeignKeyField(WebhookPayload, null=True, on_delete="SET NULL")
    received_at = DateTimeTZField(default=utcnow)

    class Meta:
        table_name = "message_status_events"
        indexes = ((("wamid", "status"), True),)


class WebhookEvent(BaseModel):
    """Anything in a webhook that is not a message or a status: `errors[]` entries (kind "error", with Meta's
    code) and changes with a `field` we do not handle (kind "unknown_field").  Stored raw, never dropped."""

    id = BigAutoField()
    payload = ForeignKeyField(WebhookPayload, backref="events", on_delete="CASCADE")
    kind = CharField(max_length=32)
    field = CharField(max_length=128, null=True)
    phone_number_id = CharField(max_length=64, null=True)
    error_code = CharField(max_length=32, null=True)
    error_title = TextField(null=True)
    raw = BinaryJSONField(null=True)
    created_at = DateTimeTZField(default=utcnow)

    class Meta:
        table_name = "webhook_events"


ALL_MODELS = (User, Contact, Conversation, Message, WebhookPayload, MessageStatusEvent, WebhookEvent)
