"""Logging: JSON lines in staging/production, readable lines locally; secrets redacted everywhere."""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import sys

from mv_os.settings import Settings

_HANDLER_NAME = "mv_os"
# Credentials that can show up inside free text: URL passwords and bearer tokens.
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://[^:/@\s]+):[^@\s]+@", re.IGNORECASE)
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+")
# Query parameters that carry a credential (Meta's handshake token, OAuth-style tokens), in any logged URL.
_TOKEN_PARAM = re.compile(r"(?i)\b((?:hub\.verify_token|access_token|token|signature)=)[^&\s\"']+")
REDACTED = "***"


class RedactingFilter(logging.Filter):
    """Replaces every known secret value, URL password and bearer token in the rendered message."""

    def __init__(self, secrets: tuple[str, ...] = ()):
        super().__init__()
        self.secrets = tuple(sorted(set(secrets), key=len, reverse=True))

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        text = _URL_PASSWORD.sub(lambda m: f"{m.group('scheme')}:{REDACTED}@", text)
        text = _TOKEN_PARAM.sub(lambda m: m.group(1) + REDACTED, text)
        return _BEARER.sub(lambda m: m.group(1) + REDACTED, text)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        record.msg = self.redact(message)
        record.args = None
        if record.exc_info:
            record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


class JsonFormatter(logging.Formatter):
    EXTRA = ("request_id", "method", "path", "status", "duration_ms", "remote_addr")

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in self.EXTRA:
            if hasattr(record, key):
                line[key] = getattr(record, key)
        if record.exc_text:
            line["exc"] = record.exc_text
        return json.dumps(line, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self):
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")


# Loggers whose lines reach the console: ours, and werkzeug's request log (the dev server's "GET /path?query").
ROUTED_LOGGERS = ("mv_os", "werkzeug")


class StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is when a line is logged, not to the stream of the moment it was created
    (a test harness or a server may swap it, and a closed stream would turn every line into an error)."""

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value):
        pass


def configure(settings: Settings) -> RedactingFilter:
    """Install one redacting handler on each routed logger (idempotent across repeated create_app calls)."""
    handler = StderrHandler()
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonFormatter() if settings.environment.deployed else TextFormatter())
    redactor = RedactingFilter(settings.secret_values())
    handler.addFilter(redactor)
    for name in ROUTED_LOGGERS:
        logger = logging.getLogger(name)
        for old in list(logger.handlers):
            if old.get_name() == _HANDLER_NAME:
                logger.removeHandler(old)
        logger.addHandler(handler)
        logger.propagate = False
    logging.getLogger("mv_os").setLevel(settings.log_level)
    logging.getLogger("werkzeug").setLevel(logging.INFO)
    return redactor
