"""X-Hub-Signature-256: `sha256=` + hex HMAC-SHA256(app secret, raw body bytes).

Always over the exact bytes received: Meta escapes unicode (`\\u00e4`) and slashes (`\\/`), so re-serialized
JSON would hash differently."""

from __future__ import annotations

import hmac
import json

HEADER = "X-Hub-Signature-256"
ENVIRON_KEY = "HTTP_" + HEADER.upper().replace("-", "_")  # the header in a WSGI environ
PREFIX = "sha256="


def sign(secret: str, body: bytes) -> str:
    return PREFIX + hmac.digest(secret.encode("utf-8"), body, "sha256").hex()


def verify(secret: str, body: bytes, header: str) -> bool:
    expected = sign(secret, body)
    return hmac.compare_digest(expected.encode("ascii"), header.strip().lower().encode("utf-8", "replace"))


def signed_headers(secret: str, body: bytes) -> dict[str, str]:
    """The headers of a Meta webhook POST carrying `body`."""
    return {"Content-Type": "application/json", HEADER: sign(secret, body)}


def meta_json(payload) -> bytes:
    """Serialize like Meta does: compact, non-ASCII as \\uXXXX escapes, '/' as '\\/'."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=True).replace("/", "\\/").encode("ascii")
