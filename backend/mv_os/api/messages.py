"""Outbound messages: `POST /api/conversations/<id>/messages` `{"text": ...}`.

The text goes out through the messaging provider of the environment (`app.extensions["messaging"]`), then
the message is stored with the provider's wamid.  Delivery receipts arrive later through the webhook.

201 -- stored message (direction "out", wamid, status)
400 -- text missing, empty or longer than 4096 characters (Meta's limit)
404 -- no such conversation
422 -- the provider refused this message for good; `meta_code` holds Meta's error code
502 -- the provider refused our credentials/configuration (an operator has to fix the settings)
503 -- the provider stayed unavailable after the retries (or timed out); try again later
"""

from __future__ import annotations

import logging

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
)

bp = Blueprint("messages", __name__, url_prefix="/api")
log = logging.getLogger("mv_os.api.messages")


def messaging() -> MessagingProvider:
    return current_app.extensions["messaging"]


@bp.post("/conversations/<int:conversation_id>/messages")
@require_auth
def send_message(conversation_id: int):
    data = request.get_json(silent=True)
    body = data.get("text") if isinstance(data, dict) else None
    if not isinstance(body, str) or not body.strip():
        raise ApiError(400, "invalid_request", "`text` is required and must not be empty.")
    if len(body) > MAX_TEXT_LENGTH:
        raise ApiError(400, "invalid_request", f"`text` must be at most {MAX_TEXT_LENGTH} characters.")
    if "\x00" in body:
        raise ApiError(400, "invalid_request", "`text` must not contain NUL characters.")

    conversation = (
        Conversation.select(Conversation, Contact).join(Contact).where(Conversation.id == conversation_id).first()
    )
    if conversation is None:
        raise ApiError(404, "not_found", "No such conversation.")
    recipient = conversation.contact.wa_id or conversation.contact.user_id
    # No transaction (and no pooled connection) is held while the provider is called.
    if not database.is_closed():
        database.close()

    try:
        result = messaging().send_text(recipient, body)
    except ProviderConfigError as err:
        log.error("send refused by the provider's configuration check: %s", err)
        raise ApiError(
            502,
            "provider_misconfigured",
            "Messages cannot be sent right now: the WhatsApp credentials or settings are not valid. "
            "An administrator has to fix them.",
            meta_code=err.code,
        ) from None
    except PermanentProviderError as err:
        raise ApiError(
            422,
            "provider_rejected",
            plain_message(err.code),
            meta_code=err.code,
        ) from None
    except RetryableProviderError as err:
        raise ApiError(
            503,
            "provider_unavailable",
            "WhatsApp is not accepting messages right now; try again in a moment.",
            meta_code=err.code,
            attempts=err.attempts,
        ) from None
    except ProviderError as err:
        log.error("unexpected provider answer: %s", err)
        raise ApiError(502, "provider_error", "WhatsApp gave an unexpected answer; the message was not sent.") from None

    message = outbound.record_sent(conversation.id, result.wamid, body, result.status, result.raw)
    return jsonify(message_json(message)), 201
