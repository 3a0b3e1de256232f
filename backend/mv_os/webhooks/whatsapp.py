"""`/webhooks/whatsapp`: the one receiver for Meta's WhatsApp webhooks, the same in every environment.

GET  -- the subscription handshake: `hub.mode=subscribe` and the right `hub.verify_token` -> 200 with
        `hub.challenge` as text/plain; anything else -> 403 in the JSON error shape.  No signature on GET.
POST -- 1. over MAX_CONTENT_LENGTH -> 413, from Content-Length before reading (chunked: at the limit);
        2. X-Hub-Signature-256 over the raw bytes: missing -> 401, wrong -> 403;
        3. not JSON, or not an object -> 400;
        4. archive the exact bytes (`intake`), 200 only after that commit; database down -> 503, so Meta
           delivers again.  The processor stores the messages moments later.
        Steps 2-4 are `accept()`, which `fastpath.py` also calls for the usual POST in front of Flask.
"""

from __future__ import annotations

import hmac
import logging

from flask import Blueprint, Response, current_app, request

from mv_os.errors import ApiError
from mv_os.meta.signing import HEADER, verify
from mv_os.meta.values import loads_strict
from mv_os.webhooks import intake, processor

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")
log = logging.getLogger("mv_os.webhooks")


@bp.get("/whatsapp")
def handshake():
    settings = current_app.config["SETTINGS"]
    mode = request.args.get("hub.mode", "")
    token = request.args.get("hub.verify_token", "")
    challenge = request.args.get("hub.challenge", "")
    if mode == "subscribe" and challenge and len(challenge) <= 1024 and _same(token, settings.whatsapp_verify_token):
        return Response(challenge, status=200, mimetype="text/plain")
    log.warning("webhook handshake refused (mode=%r)", mode[:32])
    raise ApiError(403, "verification_failed", "The webhook verification request was refused.")


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8"))


def _read_body(limit: int) -> bytes:
    """The raw bytes, at most `limit`: one rule, `len(body) <= limit`, whether the length is declared or not.
    With a Content-Length the answer is decided before reading; a chunked body is read until it ends or passes
    the limit (its own loop: werkzeug's limited stream refuses a chunked body of exactly `limit` bytes)."""
    too_large = ApiError(413, "payload_too_large", f"The webhook body is larger than {limit} bytes.")
    if request.content_length is not None:
        if request.content_length > limit:
            raise too_large
        return request.get_data(cache=False)
    if not request.environ.get("wsgi.input_terminated"):
        return b""  # neither a length nor a terminated (chunked) stream: no body, as werkzeug reads it
    stream, chunks, size = request.environ["wsgi.input"], [], 0
    while chunk := stream.read(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


@bp.post("/whatsapp")
def receive():
    """The Flask route serves what the fast path (`fastpath.py`) hands on: chunked bodies and bodies declared
    over the limit; everything else has been answered before Flask sees it, by the same `accept()`."""
    settings = current_app.config["SETTINGS"]
    body = _read_body(current_app.config["MAX_CONTENT_LENGTH"])
    return accepted(accept(settings, body, request.headers.get(HEADER)))


def accept(settings, body: bytes, signature: str | None) -> intake.Archived:
    """Steps 2-4 for a body already read: signature, JSON, archive.  Raises ApiError (401/403/400) or a database
    error (-> 503); returns only after the body is committed."""
    if not signature:
        raise ApiError(401, "signature_missing", f"The {HEADER} header is required.")
    if not verify(settings.whatsapp_app_secret, body, signature):
        log.warning("webhook signature mismatch (%d bytes)", len(body))
        raise ApiError(403, "signature_invalid", f"The {HEADER} signature does not match the body.")

    try:
        payload = loads_strict(body)
    except (ValueError, RecursionError):
        raise ApiError(400, "invalid_json", "The webhook body is not valid JSON.") from None
    if not isinstance(payload, dict):
        raise ApiError(400, "invalid_payload", "The webhook body must be a JSON object.")

    archived = intake.archive(body)
    # Committed: only now may Meta consider this delivery done.  The messages follow in the inbox shortly.
    processor.shared.arrived(settings.whatsapp_phone_number_id)
    log.debug("webhook %s: payload %d", "duplicate" if archived.duplicate else "archived", archived.payload_id)
    return archived


def accepted(archived: intake.Archived) -> dict:
    return {"status": "ok", "duplicate": archived.duplicate, "payload_id": archived.payload_id}
