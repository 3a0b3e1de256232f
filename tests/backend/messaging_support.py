"""Helpers shared by the messaging tests (webhooks, outbound, replay): signing, fixtures, SQL look-ups."""

from __future__ import annotations

import time
from pathlib import Path

import psycopg

from mv_os.meta import signing
from mv_os.meta.signing import meta_json

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "scripts" / "webhooks" / "fixtures"
LOCAL_SECRET = "local-app-secret"  # the local template's value, also the Settings default
LOCAL_VERIFY_TOKEN = "local-verify-token"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def signature(body: bytes, secret: str = LOCAL_SECRET) -> str:
    return signing.sign(secret, body)


def signed_headers(body: bytes, secret: str = LOCAL_SECRET) -> dict[str, str]:
    return signing.signed_headers(secret, body)


def rows(url: str, sql: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()


def scalar(url: str, sql: str, params: tuple = ()):
    result = rows(url, sql, params)
    return result[0][0] if result else None


def wait_processed(url: str, timeout: float = 15.0) -> None:
    """Wait until the webhook processor has stored every archived payload (a 200 means "archived"; the
    messages reach the inbox moments later)."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True) as conn:  # one connection for the whole wait
        while conn.execute("SELECT count(*) FROM webhook_payloads WHERE processed_at IS NULL").fetchone()[0]:
            if time.monotonic() > deadline:
                raise AssertionError(f"webhook payloads still unprocessed after {timeout:.0f}s")
            time.sleep(0.01)


def status_payload(wamid: str, status: str, timestamp: int = 1764080500, errors: list | None = None) -> bytes:
    item = {"id": wamid, "status": status, "timestamp": str(timestamp), "recipient_id": "4915112345678"}
    if errors:
        item["errors"] = errors
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
        "statuses": [item],
    }
    return meta_json(
        {
            "object": "whatsapp_business_account",
            "entry": [{"id": "1", "changes": [{"value": value, "field": "messages"}]}],
        }
    )


def outbound_message(url: str, wamid: str, status: str = "accepted", wa_id: str = "4915112345678") -> int:
    """Insert a contact, conversation and outbound message straight into the database; returns the message id."""
    with psycopg.connect(url, autocommit=True) as conn:
        contact = conn.execute(
            "INSERT INTO contacts (wa_id, profile_name, created_at, updated_at) VALUES (%s, 'Out', now(), now()) "
            "ON CONFLICT (wa_id) DO UPDATE SET profile_name = EXCLUDED.profile_name RETURNING id",
            (wa_id,),
        ).fetchone()[0]
        conversation = conn.execute(
            "INSERT INTO conversations (phone_number_id, contact_id, last_message_at, created_at) "
            "VALUES ('106540352242922', %s, now(), now()) "
            "ON CONFLICT (phone_number_id, contact_id) DO UPDATE SET last_message_at = now() RETURNING id",
            (contact,),
        ).fetchone()[0]
        return conn.execute(
            "INSERT INTO messages (conversation_id, direction, wamid, type, text, status, sent_at, created_at, "
            "updated_at) VALUES (%s, 'out', %s, 'text', 'hello', %s, now(), now(), now()) RETURNING id",
            (conversation, wamid, status),
        ).fetchone()[0]
