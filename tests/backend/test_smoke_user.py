"""Staging's smoke user: only staging (and local) accept its password, it must be a real secret, and the image's
migrate step creates the user and follows a rotated password.  The release engine's smoke test logs in as it
(tests/release/test_smoke.py)."""

from __future__ import annotations

import secrets
import subprocess
import sys

import pytest
import requests

from mv_os.settings import ConfigError, Settings
from tests.backend.test_settings import cloud_env
from tests.support.databases import scalar, truncate_all
from tests.support.servers import ROOT, STAGING_SECRETS, LiveServer, backend_env

EMAIL = "smoke@mv-os.invalid"


def _error(environ: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as info:
        Settings.from_env(environ)
    return str(info.value)


@pytest.mark.unit
def test_staging_reads_the_smoke_user_and_keeps_its_password_out_of_repr():
    password = secrets.token_urlsafe(24)
    settings = Settings.from_env(cloud_env("staging", SMOKE_USER_EMAIL=EMAIL, SMOKE_USER_PASSWORD=password))
    assert settings.smoke_user_email == EMAIL and settings.smoke_user_password == password
    assert password not in repr(settings) and password in settings.secret_values()


@pytest.mark.unit
def test_production_refuses_a_smoke_password_naming_only_the_variable():
    password = secrets.token_urlsafe(24)
    message = _error(cloud_env("production", SMOKE_USER_EMAIL=EMAIL, SMOKE_USER_PASSWORD=password))
    assert message.startswith("SMOKE_USER_PASSWORD ") and "production has no smoke user" in message
    assert password not in message


@pytest.mark.unit
@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ("short-but-random-9x", "must be at least 24 bytes"),
        ("abababababababababababababab", "different characters"),
        ("<the smoke user's password>", "placeholder"),
    ],
)
def test_staging_refuses_a_weak_smoke_password(value, needle):
    message = _error(cloud_env("staging", SMOKE_USER_EMAIL=EMAIL, SMOKE_USER_PASSWORD=value))
    assert message.startswith("SMOKE_USER_PASSWORD ") and needle in message and value not in message


@pytest.mark.unit
@pytest.mark.parametrize("given", ["SMOKE_USER_EMAIL", "SMOKE_USER_PASSWORD"])
def test_the_smoke_email_and_password_come_together(given):
    value = EMAIL if given == "SMOKE_USER_EMAIL" else secrets.token_urlsafe(24)
    message = _error(cloud_env("staging", **{given: value}))
    assert "set both or neither" in message and value not in message


def _migrate(env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "mv_os", "migrate"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert env["SMOKE_USER_PASSWORD"] not in done.stdout + done.stderr
    return done.stdout


@pytest.mark.slow
def test_the_migrate_step_creates_the_smoke_user_and_follows_a_rotation(migrated_url):
    """The image's start command migrates, then serves: the user exists before the first request, and a rotated
    secret (plus a redeploy) is the only step to change its password; the old password and its tokens stop."""
    first = secrets.token_urlsafe(24)
    env = backend_env(migrated_url, **STAGING_SECRETS, SMOKE_USER_EMAIL=EMAIL, SMOKE_USER_PASSWORD=first)
    try:
        assert f"smoke user: {EMAIL} created" in _migrate(env)
        assert f"smoke user: {EMAIL} up to date" in _migrate(env)
        server = LiveServer({**env, "WEB_CONCURRENCY": "1"}).start()

        def log_in(password: str) -> requests.Response:
            return requests.post(
                f"{server.url}/api/auth/login", json={"email": EMAIL, "password": password}, timeout=10
            )

        try:
            login = log_in(first)
            assert login.status_code == 200
            bearer = {"Authorization": f"Bearer {login.json()['access_token']}"}
            rotated = secrets.token_urlsafe(24)
            assert f"smoke user: {EMAIL} given the rotated password" in _migrate(
                {**env, "SMOKE_USER_PASSWORD": rotated}
            )
            assert requests.get(f"{server.url}/api/me", headers=bearer, timeout=10).status_code == 401
            assert log_in(first).status_code == 401
            assert log_in(rotated).status_code == 200
        finally:
            server.kill()
        assert scalar(migrated_url, "SELECT count(*) FROM users WHERE email = %s", (EMAIL,)) == 1
    finally:
        truncate_all(migrated_url)
