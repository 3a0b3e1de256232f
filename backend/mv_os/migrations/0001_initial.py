"""Initial schema: users, contacts, conversations, messages (a frozen copy, independent of models.py)."""

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

    class User(Base):
        id = AutoField()
        email = CharField(max_length=320, unique=True)
        password_hash = CharField(max_length=255)
        display_name = CharField(max_length=200, default="")
        created_at = DateTimeTZField(default=_now)

        class Meta:
            table_name = "users"

    class Contact(Base):
        id = AutoField()
        wa_id = CharField(max_length=64, null=True, unique=True)
        user_id = CharField(max_length=128, null=True, unique=True)
        profile_name = CharField(max_length=256, default="")
        created_at = DateTimeTZField(default=_now)
        updated_at = DateTimeTZField(default=_now)

        class Meta:
            table_name = "contacts"
            constraints = [Check("wa_id IS NOT NULL OR user_id IS NOT NULL")]

    class Conversation(Base):
        id = AutoField()
        phone_number_id = CharField(max_length=64)
        contact = ForeignKeyField(Contact, on_delete="CASCADE")
        last_message_at = DateTimeTZField(default=_now, index=True)
        created_at = DateTimeTZField(default=_now)

        class Meta:
            table_name = "conversations"
            indexes = ((("phone_number_id", "contact"), True),)

    class Message(Base):
        id = BigAutoField()
        conversation = ForeignKeyField(Conversation, on_delete="CASCADE")
        direction = CharField(max_length=3, constraints=[SQL("CHECK (direction IN ('in', 'out'))")])
        wamid = CharField(max_length=256, null=True, unique=True)
        type = CharField(max_length=32, default="text")
        text = TextField(null=True)
        raw = BinaryJSONField(null=True)
        status = CharField(max_length=16, default="pending")
        error_code = CharField(max_length=32, null=True)
        error_title = TextField(null=True)
        sent_at = DateTimeTZField(default=_now)
        created_at = DateTimeTZField(default=_now)
        updated_at = DateTimeTZField(default=_now)

        class Meta:
            table_name = "messages"
            indexes = ((("conversation", "sent_at"), False),)

    db.create_tables([User, Contact, Conversation, Message])


def down(migrator, db):
    db.execute_sql("DROP TABLE IF EXISTS messages, conversations, contacts, users CASCADE")
