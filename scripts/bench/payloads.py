"""Signed WhatsApp webhook bodies for the benchmark: Meta's shape and escapes, a unique wamid per message.

Senders are spread over `CONTACTS` phone numbers, like a reply storm after a broadcast."""

from __future__ import annotations

from mv_os.meta.signing import meta_json

SECRET = "local-app-secret"  # noqa: S105 - the local template's WHATSAPP_APP_SECRET (also the Settings default)
PHONE_NUMBER_ID = "106540352242922"
CONTACTS = 5000
TIMESTAMP = "1764080000"


def wamid(run: str, worker: int, seq: int) -> str:
    return f"wamid.BENCH.{run}.{worker}.{seq}"


def _message(mid: str, n: int) -> tuple[dict, dict]:
    wa_id = f"49151{n % CONTACTS:08d}"
    contact = {"profile": {"name": f"Bench Kontakt {n % CONTACTS} \u00fc"}, "wa_id": wa_id}
    message = {
        "from": wa_id,
        "id": mid,
        "timestamp": TIMESTAMP,
        "type": "text",
        "text": {"body": f"Hallo, gibt es Nr. {n} auch in Gr\u00fcn? https://example.com/p/{n}"},
    }
    return contact, message


def body(wamids: list[str], first: int) -> bytes:
    """One POST carrying these messages (one entry, one change), serialized like Meta does."""
    contacts, messages = [], []
    for i, mid in enumerate(wamids):
        contact, message = _message(mid, first + i)
        contacts.append(contact)
        messages.append(message)
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE_NUMBER_ID},
        "contacts": contacts,
        "messages": messages,
    }
    payload = {"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [
        {"value": value, "field": "messages"}]}]}  # fmt: skip
    return meta_json(payload)
