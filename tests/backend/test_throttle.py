"""Login throttling (throttle.py): per account and per client address, shared through PostgreSQL, 429 with
Retry-After in the JSON error shape, the right password refused while locked, one log line per lockout."""

from __future__ import annotations

import logging

import pytest

from mv_os import create_app, db, throttle
from mv_os.models import User
from tests.support.databases import scalar
from tests.support.servers import DEMO_PASSWORD

LOGIN = "/api/auth/login"


def attempt(client, email: str, password: str, address: str = "203.0.113.7"):
    return client.post(LOGIN, json={"email": email, "password": password}, environ_base={"REMOTE_ADDR": address})


def test_an_account_locks_after_its_limit_and_refuses_even_the_right_password(client, user, caplog):
    caplog.set_level(logging.WARNING, logger="mv_os.throttle")
    limit = throttle.LIMITS["account"]
    answers = [attempt(client, user.email, f"wrong-{i}").status_code for i in range(limit)]
    assert answers == [401] * limit
    locked = attempt(client, user.email, DEMO_PASSWORD)
    assert locked.status_code == 429
    assert locked.get_json()["error"]["code"] == "too_many_attempts"
    retry_after = int(locked.headers["Retry-After"])
    assert 0 < retry_after <= throttle.LOCKOUT_SECONDS
    assert locked.get_json()["error"]["retry_after"] == retry_after
    # Another address does not help: the account itself is locked.
    assert attempt(client, user.email, DEMO_PASSWORD, address="198.51.100.9").status_code == 429
    lockouts = [r for r in caplog.records if r.name == "mv_os.throttle"]
    assert len(lockouts) == 1, [r.getMessage() for r in lockouts]
    assert "account" in lockouts[0].getMessage()
    assert DEMO_PASSWORD not in caplog.text


def test_the_lock_ends_with_its_window_and_a_success_clears_the_count(client, user, settings):
    for i in range(throttle.LIMITS["account"]):
        attempt(client, user.email, f"wrong-{i}")
    assert attempt(client, user.email, DEMO_PASSWORD).status_code == 429
    # The window the lock began in passes, the lock does not: still closed (as Retry-After said).
    with db.database.connection_context():
        db.database.execute_sql("UPDATE login_throttle SET window_start = now() - interval '1 hour'")
    assert attempt(client, user.email, DEMO_PASSWORD).status_code == 429
    # The lock passes too (moved back in the shared table, as another instance would see it).
    with db.database.connection_context():
        db.database.execute_sql(
            "UPDATE login_throttle SET locked_until = now() - interval '1 second', "
            "window_start = now() - interval '1 hour'"
        )
    assert attempt(client, user.email, DEMO_PASSWORD).status_code == 200
    assert scalar(settings.database_url, "SELECT count(*) FROM login_throttle WHERE key LIKE 'account:%%'") == 0


def test_an_address_guessing_many_accounts_is_locked(client, user):
    limit = throttle.LIMITS["address"]
    for i in range(limit):
        assert attempt(client, f"nobody-{i}@example.com", "guess").status_code == 401
    # Every account from that address is refused now, the right password of a real one included...
    assert attempt(client, user.email, DEMO_PASSWORD).status_code == 429
    # ...but not from another address.
    assert attempt(client, user.email, DEMO_PASSWORD, address="198.51.100.9").status_code == 200


def test_the_count_is_shared_by_every_app_on_the_database(settings, user):
    """Two apps (two workers or instances) on one database: failures at one lock the account at the other."""
    first, second = (create_app(settings).test_client() for _ in range(2))
    for i in range(throttle.LIMITS["account"]):
        client = first if i % 2 else second
        assert attempt(client, user.email, f"wrong-{i}").status_code == 401
    assert attempt(first, user.email, DEMO_PASSWORD).status_code == 429
    assert attempt(second, user.email, DEMO_PASSWORD).status_code == 429


def test_a_password_change_is_throttled_like_a_login(client, user, auth_headers):
    new = "a-new-password-1"  # pragma: allowlist secret (a test password)
    for i in range(throttle.LIMITS["account"]):
        body = {"current_password": f"wrong-{i}", "new_password": new}
        assert client.post("/api/auth/password", json=body, headers=auth_headers).status_code == 403
    body = {"current_password": DEMO_PASSWORD, "new_password": new}
    assert client.post("/api/auth/password", json=body, headers=auth_headers).status_code == 429
    with db.database.connection_context():
        assert User.get_by_id(user.id).token_version == 0  # nothing changed


@pytest.mark.unit
@pytest.mark.parametrize(
    ("remote", "forwarded", "hops", "expected"),
    [
        ("10.0.0.5", None, 0, "10.0.0.5"),
        ("10.0.0.5", "1.2.3.4", 0, "10.0.0.5"),  # local: X-Forwarded-For is whatever the client says
        ("10.0.0.5", "203.0.113.7", 1, "203.0.113.7"),
        ("10.0.0.5", "6.6.6.6, 203.0.113.7", 1, "203.0.113.7"),  # a forged left part is ignored
        ("10.0.0.5", "", 1, "10.0.0.5"),
        (None, None, 0, "unknown"),
    ],
)
def test_the_client_address_trusts_only_the_proxies_of_the_environment(remote, forwarded, hops, expected):
    assert throttle.client_address(remote, forwarded, hops) == expected


def test_concurrent_attempts_never_check_more_passwords_than_the_limit(app, user):
    """Attempts are counted before their password is checked: 12 at once against one account get exactly its
    limit of password checks (401), the rest 429 -- however long each check takes."""
    from concurrent.futures import ThreadPoolExecutor

    def one(i: int) -> int:
        with app.test_client() as client:
            return attempt(client, user.email, f"wrong-{i}", address=f"198.51.100.{i}").status_code

    with ThreadPoolExecutor(max_workers=12) as pool:
        answers = sorted(pool.map(one, range(12)))
    assert answers == [401] * throttle.LIMITS["account"] + [429] * (12 - throttle.LIMITS["account"])
