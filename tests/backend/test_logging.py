"""Logs: JSON lines with request fields in staging/production, readable lines locally, secrets redacted."""

from __future__ import annotations

import json
import logging

import pytest

from mv_os import create_app
from mv_os.logging_setup import RedactingFilter
from mv_os.settings import Environment

SECRET = "S3cr3t-JWT-value-that-is-long-enough-42"  # pragma: allowlist secret (test value)


@pytest.fixture
def captured(capsys):
    def read() -> list[str]:
        return [line for line in capsys.readouterr().err.splitlines() if line.strip()]

    return read


def test_staging_logs_json_lines_with_request_fields(settings, captured):
    app = create_app(settings.replace(environment=Environment.STAGING, jwt_secret=SECRET, log_level="INFO"))
    captured()
    app.test_client().get("/healthz", headers={"X-Request-Id": "req-42"})
    lines = [json.loads(line) for line in captured()]
    access = [line for line in lines if line["logger"] == "mv_os.access"]
    assert len(access) == 1
    assert access[0] | {"ts": None, "duration_ms": None} == {
        "ts": None,
        "level": "info",
        "logger": "mv_os.access",
        "message": access[0]["message"],
        "request_id": "req-42",
        "method": "GET",
        "path": "/healthz",
        "status": 200,
        "duration_ms": None,
    }
    assert isinstance(access[0]["duration_ms"], float)


def test_local_logs_are_readable_lines(settings, captured):
    app = create_app(settings.replace(log_level="INFO"))
    captured()
    app.test_client().get("/healthz")
    lines = captured()
    assert any("GET /healthz 200" in line for line in lines)
    with pytest.raises(json.JSONDecodeError):
        json.loads(lines[-1])


def test_secrets_never_reach_the_log(settings, captured):
    db_url = settings.database_url
    app = create_app(settings.replace(environment=Environment.STAGING, jwt_secret=SECRET, log_level="INFO"))

    @app.get("/leak")
    def leak():
        log = logging.getLogger("mv_os.test")
        log.info("jwt=%s", SECRET)
        # pragma: allowlist nextline secret (test value)
        log.info("connecting to postgresql://mvos:pa55word-xyz@mv-os-db-staging:5432/mv_os")
        # pragma: allowlist nextline secret (test value)
        log.info("header Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig")
        raise RuntimeError(f"boom {SECRET}")

    captured()
    assert app.test_client().get("/leak").status_code == 500
    text = "\n".join(captured())
    for secret in (SECRET, "pa55word-xyz", "eyJzdWIiOiIxIn0"):
        assert secret not in text
    assert text.count("***") >= 4
    assert db_url not in text or "@" not in db_url


def test_redactor_handles_url_passwords_and_bearer_tokens():
    redactor = RedactingFilter(("topsecretvalue",))
    assert redactor.redact("x topsecretvalue y") == "x *** y"
    # pragma: allowlist nextline secret (test value)
    assert redactor.redact("postgresql://u:p%40ss@h/db") == "postgresql://u:***@h/db"
    assert redactor.redact("bearer abc.def") == "bearer ***"
