"""Webhook bodies as Meta sends them: the fixtures, signatures with the local secret, status payloads."""

from __future__ import annotations

from pathlib import Path

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
