"""The messaging port: what the rest of the backend may ask of a messaging provider, and what can go wrong.

Error tree (catch the most specific one you can act on):

    ProviderError                     anything that stopped a send
    ├── RetryableProviderError        worth trying again later (rate limits, Meta 5xx, network); raised
    │                                 after the adapter's own retries are used up
    └── PermanentProviderError        this message will never go through as it is (Meta's `code` kept)
        └── ProviderConfigError       our side is broken: expired/invalid token, wrong phone number id
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

# Meta's limit for a text message body, in characters.
MAX_TEXT_LENGTH = 4096


@dataclass(frozen=True)
class SendResult:
    """A message the provider accepted.  `wamid` is the id status webhooks will refer to."""

    wamid: str
    to: str
    status: str = "accepted"
    raw: dict = field(default_factory=dict, repr=False)


class ProviderError(Exception):
    """A send did not succeed.  `code` is Meta's numeric error code when there is one."""

    def __init__(self, message: str, *, code: int | None = None, http_status: int | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.http_status = http_status

    def __str__(self) -> str:
        parts = [self.message]
        if self.code is not None:
            parts.append(f"code={self.code}")
        if self.http_status is not None:
            parts.append(f"http={self.http_status}")
        return " ".join(parts)


class RetryableProviderError(ProviderError):
    """Temporary: rate limited, provider unavailable, network trouble.  `attempts` tells how many were made."""

    def __init__(self, message: str, *, attempts: int = 1, safe_to_retry: bool = True, **kwargs):
        super().__init__(message, **kwargs)
        self.attempts = attempts
        # False when the request may have reached the provider (read timeout): retrying could send twice.
        self.safe_to_retry = safe_to_retry


class PermanentProviderError(ProviderError):
    """The provider refused this message for good (e.g. 131047 outside the 24 h window, 131026 undeliverable)."""


class ProviderConfigError(PermanentProviderError):
    """Credentials or configuration are wrong (e.g. 190 expired token).  Someone has to fix the settings."""


@runtime_checkable
class MessagingProvider(Protocol):
    """Sends messages.  `to` is the contact's phone-based `wa_id`, or its business-scoped `user_id`."""

    name: str

    def send_text(self, to: str, body: str, *, reply_to: str | None = None) -> SendResult: ...
