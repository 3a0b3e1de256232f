"""Smoke checks against a real gunicorn (the same command the image runs) on the worker's PostgreSQL, started
as staging would run it, and against a deliberately wrong server (pytest-httpserver)."""

from __future__ import annotations

import functools
import secrets

import pytest

from scripts.release import smoke
from tests.release.conftest import digest_of
from tests.support.databases import truncate_all
from tests.support.servers import LiveServer, backend_env

DIGEST = digest_of("smoke-build")
pytestmark = pytest.mark.slow  # starts gunicorn


@pytest.fixture(scope="module")
def staging_server(migrated_url):
    """gunicorn with NODE_ENV=staging and the release engine's variables; credentials are random per run."""
    env = backend_env(
        migrated_url,
        NODE_ENV="staging",
        IMAGE_DIGEST=DIGEST,
        GIT_SHA="a" * 40,
        JWT_SECRET=secrets.token_urlsafe(48),
        WHATSAPP_APP_SECRET=secrets.token_hex(16),
        WHATSAPP_VERIFY_TOKEN=secrets.token_hex(16),
        WHATSAPP_ACCESS_TOKEN=secrets.token_hex(24),
        WHATSAPP_PHONE_NUMBER_ID="100000000000001",
        WEB_CONCURRENCY="1",  # the smoke checks send one request at a time
    )
    server = LiveServer(env).start()
    yield server
    server.kill()
    truncate_all(migrated_url)


def test_a_healthy_staging_service_passes_every_check(staging_server):
    checks = smoke.run(staging_server.url, "staging", DIGEST, attempts=1)
    assert [c.line() for c in checks] == [
        "PASS healthz",
        "PASS readyz",
        "PASS version",
        "PASS webhook-wrong-verify-token",
        "PASS garbage-bearer-token",
    ]


def test_the_wrong_build_or_environment_fails_version(staging_server):
    wrong_digest = {c.name: c for c in smoke.run(staging_server.url, "staging", digest_of("other"), attempts=1)}
    assert not wrong_digest["version"].ok
    assert f"reports image digest {DIGEST}" in wrong_digest["version"].reason
    wrong_env = {c.name: c for c in smoke.run(staging_server.url, "production", DIGEST, attempts=1)}
    assert "reports environment 'staging', expected 'production'" in wrong_env["version"].reason


def test_a_server_with_open_doors_fails(httpserver):
    """A server that says yes to everything: the handshake and bearer checks must catch it."""
    httpserver.expect_request("/version").respond_with_json({"environment": "staging", "image_digest": DIGEST})
    httpserver.expect_request("/webhooks/whatsapp").respond_with_data("whatever", status=200)
    httpserver.expect_request("/api/me").respond_with_json({"id": 1})
    httpserver.expect_request("/healthz").respond_with_json({"status": "ok"})
    httpserver.expect_request("/readyz").respond_with_json({"status": "unavailable"}, status=503)
    checks = {c.name: c for c in smoke.run(httpserver.url_for("/"), "staging", DIGEST, attempts=1)}
    assert checks["healthz"].ok and checks["version"].ok
    assert checks["readyz"].reason == "expected 200, got 503"
    assert checks["webhook-wrong-verify-token"].reason == "a wrong verify token got 200, expected 403"
    assert checks["garbage-bearer-token"].reason == "expected 401, got 200"


def test_nothing_listening_fails_every_check():
    checks = smoke.run("http://127.0.0.1:9", "staging", DIGEST, attempts=2, sleep=lambda s: None, timeout=1)
    assert all(not c.ok and "did not answer" in c.reason for c in checks)


def test_the_smoke_command_prints_pass_lines(staging_server, staging, capsys, monkeypatch):
    from scripts.release.flows import smoke_command

    # The command's own retry policy (3 attempts, 2 s apart), with the waits recorded instead of slept.
    sleeps: list[float] = []
    monkeypatch.setattr(smoke, "run", functools.partial(smoke.run, sleep=sleeps.append))
    assert smoke_command(staging, staging_server.url, DIGEST, aws=None) == 0
    assert sleeps == []
    assert capsys.readouterr().out.splitlines() == [
        "PASS healthz",
        "PASS readyz",
        "PASS version",
        "PASS webhook-wrong-verify-token",
        "PASS garbage-bearer-token",
    ]
    assert smoke_command(staging, staging_server.url, digest_of("other"), aws=None) == 1
    assert sleeps == [2.0, 2.0]  # the wrong digest was asked three times before it failed
