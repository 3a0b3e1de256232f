"""Smoke checks against a real gunicorn (the same command the image runs) on the worker's PostgreSQL, started
as staging would run it, and against a deliberately wrong server (pytest-httpserver)."""

from __future__ import annotations

import functools
import secrets
import subprocess
import sys
import types

import boto3
import pytest

from scripts.release import smoke
from tests.release.conftest import digest_of
from tests.support.databases import scalar, truncate_all
from tests.support.servers import ROOT, LiveServer, backend_env

DIGEST = digest_of("smoke-build")
EMAIL = "smoke@mv-os.invalid"
PASSWORD = secrets.token_urlsafe(24)  # made per run: staging refuses any value committed to the repository
LOGIN = smoke.Login(EMAIL, PASSWORD)
CHECKS = ["PASS healthz", "PASS readyz", "PASS version", "PASS webhook-wrong-verify-token", "PASS garbage-bearer-token"]
pytestmark = pytest.mark.slow  # starts gunicorn


@pytest.fixture(scope="module")
def staging_server(migrated_url):
    """The image's start command with NODE_ENV=staging and the release engine's variables (credentials random
    per run): `flask migrate` (which creates the smoke user), then gunicorn."""
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
        SMOKE_USER_EMAIL=EMAIL,
        SMOKE_USER_PASSWORD=PASSWORD,
    )
    migrate = [sys.executable, "-m", "flask", "--app", "mv_os", "migrate"]
    subprocess.run(migrate, env=env, cwd=ROOT, check=True, capture_output=True, timeout=60)
    server = LiveServer(env).start()
    yield server
    server.kill()
    truncate_all(migrated_url)


def test_a_healthy_staging_service_passes_every_check_and_the_logout_is_written(staging_server, migrated_url):
    before = scalar(migrated_url, "SELECT token_version FROM users WHERE email = %s", (EMAIL,))
    checks = smoke.run(staging_server.url, "staging", DIGEST, LOGIN, attempts=1)
    assert [c.line() for c in checks] == [*CHECKS, "PASS login", "PASS db-write"]
    assert scalar(migrated_url, "SELECT token_version FROM users WHERE email = %s", (EMAIL,)) == before + 1
    assert PASSWORD not in repr(checks) + repr(LOGIN)


def test_without_a_smoke_user_the_smoke_test_never_logs_in(staging_server):
    """Production's smoke test: no login, so no CI role holds a password that opens production."""
    assert [c.line() for c in smoke.run(staging_server.url, "staging", DIGEST, None, attempts=1)] == CHECKS


def test_a_wrong_smoke_password_fails_login(staging_server):
    checks = {c.name: c for c in smoke.run(staging_server.url, "staging", DIGEST, smoke.Login(EMAIL, "x" * 24))}
    assert checks["login"].line() == f"FAIL login: {EMAIL} got 401, expected 200"
    assert "db-write" not in checks


def test_a_logout_that_writes_nothing_fails_db_write(httpserver):
    """A server whose logout answers 204 but whose tokens keep working: its write never reached the database."""
    httpserver.expect_request("/api/auth/login", method="POST").respond_with_json({"access_token": "a.b.c"})
    httpserver.expect_request("/api/auth/logout", method="POST").respond_with_data("", status=204)
    httpserver.expect_request("/api/me").respond_with_json({"id": 7, "email": EMAIL})
    checks = {c.name: c for c in smoke.run(httpserver.url_for("/"), "staging", DIGEST, LOGIN, attempts=1)}
    assert checks["login"].ok
    assert checks["db-write"].line() == "FAIL db-write: the token still works after logout (200)"


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


def test_the_smoke_command_reads_the_password_and_prints_pass_lines(staging_server, staging, capsys, monkeypatch, moto):
    from scripts.release.flows import smoke_command

    # The command's own retry policy (3 attempts, 2 s apart), with the waits recorded instead of slept.
    sleeps: list[float] = []
    monkeypatch.setattr(smoke, "run", functools.partial(smoke.run, sleep=sleeps.append))
    secretsmanager = boto3.client("secretsmanager", region_name="us-east-1")
    aws = types.SimpleNamespace(secretsmanager=secretsmanager)
    secretsmanager.create_secret(Name=staging.secrets["SMOKE_USER_PASSWORD"], SecretString=PASSWORD)
    assert smoke_command(staging, staging_server.url, DIGEST, aws=aws) == 0
    assert sleeps == []
    output = capsys.readouterr().out
    assert output.splitlines() == [*CHECKS, "PASS login", "PASS db-write"] and PASSWORD not in output
    assert smoke_command(staging, staging_server.url, digest_of("other"), aws=aws) == 1
    assert sleeps == [2.0, 2.0]  # the wrong digest was asked three times before it failed


def test_the_smoke_command_fails_login_when_it_cannot_read_the_password(staging_server, staging, capsys, moto):
    from scripts.release.flows import smoke_command

    name = staging.secrets["SMOKE_USER_PASSWORD"]
    assert smoke_command(staging, staging_server.url, DIGEST, aws=None) == 1
    assert capsys.readouterr().out.splitlines()[-1] == f"FAIL login: reading {name} needs AWS credentials"
    aws = types.SimpleNamespace(secretsmanager=boto3.client("secretsmanager", region_name="us-east-1"))
    assert smoke_command(staging, staging_server.url, DIGEST, aws=aws) == 1
    last = capsys.readouterr().out.splitlines()[-1]
    assert last == f"FAIL login: cannot read the smoke user's password from {name} (ResourceNotFoundException)"
