"""Login, tokens (HS256 only, iss/aud/exp/sub) and the create-user / seed-demo commands."""

from __future__ import annotations

import base64
import datetime as dt
import json

import jwt
import pytest
from werkzeug.security import check_password_hash

from mv_os import auth, create_app, db
from mv_os.cli import create_user
from mv_os.models import User
from mv_os.settings import DEFAULT_PASSWORD_HASH_METHOD, Environment, Settings
from tests.support.databases import truncate_all
from tests.support.servers import DEMO_PASSWORD, TEST_PASSWORD_HASH_METHOD

SECRET_32 = "k" * 16 + "Q7v2Lx9pR3mT8wZ1"


def _claims(**overrides):
    now = dt.datetime.now(dt.UTC)
    claims = {
        "iss": "mv-os",
        "aud": "mv-os-local",
        "sub": "1",
        "iat": now,
        "exp": now + dt.timedelta(minutes=5),
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def test_login_returns_a_bearer_token(client, user, settings):
    response = client.post("/api/auth/login", json={"email": " Operator@Example.com ", "password": DEMO_PASSWORD})
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == settings.jwt_ttl_seconds
    header = jwt.get_unverified_header(body["access_token"])
    assert header["alg"] == "HS256"
    claims = jwt.decode(body["access_token"], settings.jwt_secret, algorithms=["HS256"], audience="mv-os-local")
    assert claims["iss"] == "mv-os"
    assert claims["sub"] == str(user.id)
    assert claims["exp"] - claims["iat"] == settings.jwt_ttl_seconds


def test_wrong_email_and_wrong_password_get_the_same_401(client, user):
    wrong_password = client.post("/api/auth/login", json={"email": user.email, "password": "nope-nope"})
    wrong_email = client.post("/api/auth/login", json={"email": "nobody@example.com", "password": DEMO_PASSWORD})
    assert wrong_password.status_code == wrong_email.status_code == 401
    assert wrong_password.get_json() == wrong_email.get_json()
    assert wrong_password.get_json()["error"]["code"] == "invalid_credentials"


@pytest.mark.parametrize(
    "body", [None, [], {"email": "a@b.c"}, {"email": 1, "password": "x"}, {"email": "", "password": ""}]
)
def test_bad_login_bodies_are_400(client, body):
    response = (
        client.post("/api/auth/login", json=body)
        if body is not None
        else client.post("/api/auth/login", data="not json", content_type="application/json")
    )
    assert response.status_code == 400
    assert "error" in response.get_json()


def test_passwords_are_stored_with_a_slow_hash(migrated_url):
    """Without PASSWORD_HASH_METHOD (every deployment): werkzeug's default scrypt, N=32768 r=8 p=1, for stored
    passwords and for the unknown-email check alike.  (The other tests run with the cheap TEST_PASSWORD_HASH_METHOD.)"""
    app = create_app(Settings.from_env({"DATABASE_URL": migrated_url, "LOG_LEVEL": "WARNING"}))
    try:
        with app.app_context(), db.database.connection_context():
            assert auth.password_hash_method() == DEFAULT_PASSWORD_HASH_METHOD
            user = create_user("Slow@Example.com", DEMO_PASSWORD, "Slow")
            stored = User.get_by_id(user.id).password_hash
            dummy = auth._dummy_hash(auth.password_hash_method())
    finally:
        db.database.obj.close_all()
        truncate_all(migrated_url)
    assert stored.startswith("scrypt:32768:8:1$")
    assert dummy.startswith("scrypt:32768:8:1$")
    assert DEMO_PASSWORD not in stored
    assert check_password_hash(stored, DEMO_PASSWORD)


@pytest.mark.parametrize("env", [Environment.STAGING, Environment.PRODUCTION])
def test_a_cloud_app_hashes_with_the_default_whatever_its_settings_hold(settings, env):
    """from_env refuses PASSWORD_HASH_METHOD outside local; a Settings object made some other way with a cheap
    method still gets the default in staging and production."""
    assert settings.password_hash_method == TEST_PASSWORD_HASH_METHOD  # the suite's own, as in every other test
    cloud = create_app(settings.replace(environment=env, jwt_secret=SECRET_32))
    with cloud.app_context():
        assert auth.password_hash_method() == DEFAULT_PASSWORD_HASH_METHOD


def test_unknown_email_is_checked_against_a_hash_made_like_the_users(app, user):
    """Timing equalisation: the dummy hash has the parameters new passwords get, so a wrong email costs what a
    wrong password costs."""
    with app.app_context():
        made = auth.hash_password("anything")
        dummy = auth._dummy_hash(auth.password_hash_method())
    assert made.split("$")[0] == dummy.split("$")[0] == TEST_PASSWORD_HASH_METHOD
    assert user.password_hash.split("$")[0] == TEST_PASSWORD_HASH_METHOD


def _me(client, token):
    return client.get("/api/me", headers={"Authorization": f"Bearer {token}"})


def test_me_requires_a_bearer_token(client):
    for headers in ({}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer "}):
        response = client.get("/api/me", headers=headers)
        assert response.status_code == 401
        assert response.get_json()["error"]["code"] == "unauthorized"


def test_expired_token_is_rejected(client, user, settings):
    past = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    token = jwt.encode(
        _claims(sub=str(user.id), iat=past, exp=past + dt.timedelta(minutes=5)),
        settings.jwt_secret,
        algorithm="HS256",
    )
    response = _me(client, token)
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "token_expired"


def test_tampered_token_is_rejected(client, token):
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "999"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    response = _me(client, f"{header}.{forged}.{signature}")
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "invalid_token"


def test_alg_none_token_is_rejected(client, user):
    token = jwt.encode(_claims(sub=str(user.id)), None, algorithm="none")
    assert _me(client, token).status_code == 401


def test_token_signed_with_another_secret_is_rejected(client, user):
    token = jwt.encode(_claims(sub=str(user.id)), "another-secret-another-secret-xx", algorithm="HS256")
    assert _me(client, token).status_code == 401


@pytest.mark.parametrize("claims", [{"iss": "someone-else"}, {"exp": None}, {"sub": None}, {"sub": "abc"}])
def test_tokens_with_wrong_or_missing_claims_are_rejected(client, user, settings, claims):
    token = jwt.encode(_claims(**{"sub": str(user.id), **claims}), settings.jwt_secret, algorithm="HS256")
    assert _me(client, token).status_code == 401


def test_staging_token_is_rejected_by_production_even_with_the_same_secret(settings, user):
    staging = create_app(settings.replace(environment=Environment.STAGING, jwt_secret=SECRET_32))
    with staging.test_client() as c:
        token = c.post("/api/auth/login", json={"email": user.email, "password": DEMO_PASSWORD}).get_json()[
            "access_token"
        ]
        assert _me(c, token).status_code == 200
    assert jwt.decode(token, options={"verify_signature": False})["aud"] == "mv-os-staging"
    production = create_app(settings.replace(environment=Environment.PRODUCTION, jwt_secret=SECRET_32))
    response = _me(production.test_client(), token)
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "invalid_token"


def test_create_user_cli_then_login(app, client):
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=["create-user", "--email", "New@Example.com", "--name", "New"],
        env={"MV_OS_NEW_USER_PASSWORD": "a-long-password"},  # pragma: allowlist secret (test value)
    )
    assert result.exit_code == 0, result.output
    assert "created user" in result.output
    assert "a-long-password" not in result.output
    login = client.post("/api/auth/login", json={"email": "new@example.com", "password": "a-long-password"})
    assert login.status_code == 200
    again = runner.invoke(
        args=["create-user", "--email", "new@example.com"],
        env={"MV_OS_NEW_USER_PASSWORD": "a-long-password"},  # pragma: allowlist secret (test value)
    )
    assert again.exit_code != 0
    assert "already exists" in again.output


def test_seed_demo_uses_the_local_template_login(app, client, monkeypatch):
    monkeypatch.setenv("DEMO_EMAIL", "demo@mv-os.local")
    monkeypatch.setenv("DEMO_PASSWORD", "demo-password")
    result = app.test_cli_runner().invoke(args=["seed-demo"])
    assert result.exit_code == 0, result.output
    assert (
        client.post("/api/auth/login", json={"email": "demo@mv-os.local", "password": "demo-password"}).status_code
        == 200
    )
    # Idempotent: running it again keeps one user.
    assert app.test_cli_runner().invoke(args=["seed-demo"]).exit_code == 0
    with app.app_context():
        assert User.select().where(User.email == "demo@mv-os.local").count() == 1


@pytest.mark.parametrize("env", [Environment.STAGING, Environment.PRODUCTION])
def test_seed_demo_refuses_outside_local(settings, env):
    app = create_app(settings.replace(environment=env, jwt_secret=SECRET_32))
    result = app.test_cli_runner().invoke(args=["seed-demo"])
    assert result.exit_code != 0
    assert "only runs in local" in result.output
    with app.app_context():
        assert User.select().count() == 0


@pytest.mark.parametrize("sub", [" 1 ", "01", "+1", "1.0", "\u0661", "\uff11", "1\n", "99999999999", 1])
def test_only_the_canonical_subject_names_a_user(client, user, settings, sub):
    """issue_token writes str(user.id); any other spelling of the same number is a different (invalid) token."""
    token = jwt.encode(_claims() | {"sub": sub}, settings.jwt_secret, algorithm="HS256")
    response = client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    canonical = jwt.encode(_claims(sub=str(user.id)), settings.jwt_secret, algorithm="HS256")
    assert client.get("/api/me", headers={"Authorization": f"Bearer {canonical}"}).status_code == 200


def _login(client, user, password=DEMO_PASSWORD) -> dict:
    response = client.post("/api/auth/login", json={"email": user.email, "password": password})
    assert response.status_code == 200, response.get_json()
    return {"Authorization": f"Bearer {response.get_json()['access_token']}"}


def test_logout_ends_every_session_of_the_user(client, user):
    phone, laptop = _login(client, user), _login(client, user)
    assert client.post("/api/auth/logout", headers=laptop).status_code == 204
    for session in (phone, laptop):
        response = client.get("/api/me", headers=session)
        assert response.status_code == 401
        assert response.get_json()["error"]["code"] == "invalid_token"
    assert client.get("/api/me", headers=_login(client, user)).status_code == 200  # a new login works


def test_a_password_change_ends_every_session_and_the_old_password(client, user):
    old_session = _login(client, user)
    new = "another-long-password"  # pragma: allowlist secret (a test password)
    body = {"current_password": DEMO_PASSWORD, "new_password": new}
    assert client.post("/api/auth/password", json=body, headers=old_session).status_code == 204
    assert client.get("/api/me", headers=old_session).status_code == 401
    wrong = client.post("/api/auth/login", json={"email": user.email, "password": DEMO_PASSWORD})
    assert wrong.status_code == 401
    assert client.get("/api/me", headers=_login(client, user, new)).status_code == 200
