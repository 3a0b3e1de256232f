"""Outbound messages: `POST /api/conversations/<id>/messages` `{"text": ...}`, optional `Idempotency-Key`.

Validated, then stored (`pending`), then sent through the messaging provider of the environment
(`app.extensions["messaging"]`), then the outcome is recorded on the stored row.  A POST carrying the
`Idempotency-Key` of an earlier one never sends again: it answers with that message as it stands, or sends it
if its last attempt ended without an outcome.  Delivery receipts arrive later through the webhook.

201 -- stored and accepted by the provider (direction "out", wamid, status)
200 -- an earlier POST with this Idempotency-Key: the message as it stands (sent or failed)
400 -- text missing, empty, longer than 4096 characters (Meta's limit), or not valid Unicode; a bad key
404 -- no such conversation
409 -- a POST with this Idempotency-Key is sending it right now
422 -- the provider refused this message for good (`failed`); `meta_code` holds Meta's error code; or the
       Idempotency-Key was used before for another text
502 -- the provider refused our credentials/configuration (kept `pending`; an operator has to fix the settings)
503 -- the provider stayed unavailable after the retries, or timed out (kept `pending`; a retry sends it)
Every error after the row is stored carries its `message_id`.
"""

from __future__ import annotations

import logging
import re

from flask import Blueprint, current_app, jsonify, request

from mv_os.api.conversations import message_json
from mv_os.auth import require_auth
from mv_os.db import database
from mv_os.errors import ApiError
from mv_os.messaging import outbound
from mv_os.meta.errors import plain_message
from mv_os.models import Contact, Conversation
from mv_os.providers.base import (
    MAX_TEXT_LENGTH,
    MessagingProvider,
    PermanentProviderError,
    ProviderConfigError,
    ProviderError,
    RetryableProviderError,
    SendResult,
)

bp = Blueprint("messages", __name__, url_prefix="/api")
log = logging.getLogger("mv_os.api.messages")


def messaging() -> MessagingProvider:
    return current_app.extensions["messaging"]


_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,128}")  # visible ASCII, like the IETF draft's examples


def _text() -> str:
    data = request.get_json(silent=True)
    body = data.get("text") if isinstance(data, dict) else None
    if not isinstance(body, str) or not body.strip():
        raise ApiError(400, "invalid_request", "`text` is required and must not be empty.")
    if len(body) > MAX_TEXT_LENGTH:
        raise ApiError(400, "invalid_request", f"`text` must be at most {MAX_TEXT_LENGTH} characters.")
    if "\x00" in body:
        raise ApiError(400, "invalid_request", "`text` must not contain NUL characters.")
    try:
        body.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate ("\ud800"): no provider, no database can take it
        raise ApiError(400, "invalid_request", "`text` must be valid Unicode (no lone surrogates).") from None
    return body


def _idempotency_key() -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is not None and not _IDEMPOTENCY_KEY.fullmatch(key):
        raise ApiError(400, "invalid_request", "`Idempotency-Key` must be 1 to 128 visible ASCII characters.")
    return key


@bp.post("/conversations/<id:conversation_id>/messages")
@require_auth
def send_message(conversation_id: int):
    body, key = _text(), _idempotency_key()
    conversation = (
        Conversation.select(Conversation, Contact).join(Contact).where(Conversation.id == conversation_id).first()
    )
    if conversation is None:
        raise ApiError(404, "not_found", "No such conversation.")
    message, created = outbound.store_pending(conversation.id, body, key)
    if not created:
        if message.text != body:
            raise ApiError(422, "idempotency_key_reused", "This Idempotency-Key was used for another text.")
        if message.wamid is not None or message.status == "failed":
            return jsonify(message_json(message)), 200
        settings = current_app.config["SETTINGS"]
        stale = settings.whatsapp_send_timeout * settings.whatsapp_send_attempts * 2 + 30
        if not outbound.claim(message.id, stale):
            raise ApiError(409, "send_in_progress", "This message is being sent right now.", retry_after=1)
    recipient = conversation.contact.wa_id or conversation.contact.user_id
    # No transaction (and no pooled connection) is held while the provider is called.
    if not database.is_closed():
        database.close()
    result = _send(message.id, recipient, body)
    return jsonify(message_json(outbound.record_sent(message.id, result.wamid, result.status, result.raw))), 201


def _send(message_id: int, recipient: str, body: str) -> SendResult:
    """The provider call; a failure is recorded on the stored message, then answered (with its id)."""
    try:
        return messaging().send_text(recipient, body)
    except ProviderConfigError as err:
        log.error("send refused by the provider's configuration check: %s", err)
        message = (
            "Messages cannot be sent right now: the WhatsApp credentials or settings are not valid. "
            "An administrator has to fix them."
        )
        outbound.record_unsent(message_id, "provider_misconfigured", message)
        raise ApiError(502, "provider_misconfigured", message, meta_code=err.code, message_id=message_id) from None
    except PermanentProviderError as err:
        outbound.record_failed(message_id, str(err.code) if err.code is not None else None, plain_message(err.code))
        raise ApiError(
            422, "provider_rejected", plain_message(err.code), meta_code=err.code, message_id=message_id
        ) from None
    except RetryableProviderError as err:
        code, message = (
            ("provider_unavailable", "WhatsApp is not accepting messages right now; try again in a moment.")
            if err.safe_to_retry
            else ("provider_timeout", "WhatsApp did not answer in time; sending again may deliver it twice.")
        )
        outbound.record_unsent(message_id, code, message)
        raise ApiError(
            503,
            "provider_unavailable",
            message,
            meta_code=err.code,
            attempts=err.attempts,
            message_id=message_id,
            retry_after=1,
        ) from None
    except ProviderError as err:
        log.error("unexpected provider answer: %s", err)
        message = "WhatsApp gave an unexpected answer; the message was not sent."
        outbound.record_unsent(message_id, "provider_error", message)
        raise ApiError(502, "provider_error", message, message_id=message_id) from None
