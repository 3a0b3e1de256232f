"""Messaging: webhook payload archive, delivery receipts (unique per wamid and status) and other webhook
events (errors[], unknown fields).  A frozen copy, independent of models.py."""

import datetime as dt

from peewee import *
from playhouse.postgres_ext import BinaryJSONField, DateTimeTZField


def _now():
    return dt.datetime.now(dt.UTC)


def up(migrator, db):
    class Base(Model):
        class Meta:
            database = db
            legacy_table_names = False

    class WebhookPayload(Base):
        id = BigAutoField()
        sha256 = CharField(max_length=64, unique=True)
        body = BlobField()
        size = IntegerField()
        deliveries = IntegerField(default=1)
        first_received_at = DateTimeTZField(default=_now)
        last_received_at = DateTimeTZField(default=_now)

        class Meta:
            table_name = "webhook_payloads"

    class MessageStatusEvent(Base):
        id = BigAutoField()
        wamid = CharField(max_length=256)
        status = CharField(max_length=32)
        timestamp = DateTimeTZField(null=True)
        recipient_id = CharField(max_length=128, null=True)
        error_code = CharField(max_length=32, null=True)
        error_title = TextField(null=True)
        raw = BinaryJSONField()
        payload = ForeignKeyField(WebhookPayload, null=True, on_delete="SET NULL")
        received_at = DateTimeTZField(default=_now)

        class Meta:
            table_name = "message_status_events"
            indexes = ((("wamid", "status"), True),)

    class WebhookEvent(Base):
        id = BigAutoField()
        payload = ForeignKeyField(WebhookPayload, on_delete="CASCADE")
        kind = CharField(max_length=32)
        field = CharField(max_length=128, null=True)
        phone_number_id = CharField(max_length=64, null=True)
        error_code = CharField(max_length=32, null=True)
        error_title = TextField(null=True)
        raw = BinaryJSONField(null=True)
        created_at = DateTimeTZField(default=_now)

        class Meta:
            table_name = "webhook_events"

    db.create_tables([WebhookPayload, MessageStatusEvent, WebhookEvent])


def down(migrator, db):
    db.execute_sql("DROP TABLE IF EXISTS webhook_events, message_status_events, webhook_payloads CASCADE")
