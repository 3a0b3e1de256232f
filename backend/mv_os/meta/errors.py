"""Graph API error codes (`{"error": {"code": ...}}`) and what each means for a send."""

from __future__ import annotations

# Rate limits and Meta's transient failure: retried with backoff.
RETRYABLE_CODES = frozenset({130429, 131056, 80007, 131000})
# 24 h window closed, undeliverable, access token expired: a retry cannot succeed.
NEVER_RETRY_CODES = frozenset({131047, 131026, 190})
# Codes that mean our credentials or permissions are wrong, not the message.
CONFIG_CODES = frozenset({0, 3, 10, 190, *range(200, 300)})
TOKEN_EXPIRED = 190

# Plain-language explanations for the permanent errors an operator meets most.
PLAIN_MESSAGES = {
    131047: "More than 24 hours have passed since the customer last wrote; WhatsApp only allows a template "
    "message now.",
    131026: "WhatsApp could not deliver to this number (not on WhatsApp, or it cannot receive this message).",
    131051: "WhatsApp does not support this message type.",
    131052: "WhatsApp could not download the media of this message.",
    131053: "WhatsApp could not upload the media of this message.",
    100: "WhatsApp rejected the request as invalid.",
    131008: "A required part of the message is missing.",
    131009: "A value in the message is not valid for WhatsApp.",
    131021: "The recipient is the sending number itself.",
}


def plain_message(code: int | None) -> str:
    """What an operator reads when Meta refuses a message for good."""
    if code is None:
        return "WhatsApp refused this message."
    return PLAIN_MESSAGES.get(code, f"WhatsApp refused this message (code {code}).")
