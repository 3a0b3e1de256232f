"""The request id and the one access line per request, shared by Flask's request hooks (`create_app`) and the
webhook fast path (`webhooks/fastpath.py`), so both answer and log the same way."""

from __future__ import annotations

import logging
import re
import time
import uuid

_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
access_log = logging.getLogger("mv_os.access")
# An accepted webhook delivery is logged at DEBUG, every other answer at INFO
# (docs/decisions/0012-access-log-and-redaction.md): in a storm the line is a large share of a webhook's cost,
# and each delivery is recorded anyway -- in webhook_payloads, in the processor's INFO line per batch, and in
# App Runner's request metrics.  Refused, failed and every non-webhook request keep their INFO line.
QUIET = ("POST", "/webhooks/whatsapp", 200)


def request_id(incoming: str | None) -> str:
    """The caller's X-Request-Id when it is a sane token (letters, digits, `._-`, at most 64), else a new one."""
    return incoming if incoming and _REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex


def log_request(method: str, path: str, status: int, started: float, request_id: str | None) -> None:
    """The access line: `GET /api/conversations 200 3.1ms` (JSON in staging/production, with these fields)."""
    level = logging.DEBUG if (method, path, status) == QUIET else logging.INFO
    if not access_log.isEnabledFor(level):
        return
    duration_ms = round((time.perf_counter() - started) * 1000, 2)
    access_log.log(
        level,
        "%s %s %s %.1fms",
        method,
        path,
        status,
        duration_ms,
        extra={
            "request_id": request_id,
            "method": method,
            "path": path,
            "status": status,
            "duration_ms": duration_ms,
        },
    )
