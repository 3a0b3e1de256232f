"""Password hashing (werkzeug scrypt), JWT issue/verify (PyJWT, HS256 only) and the @require_auth guard.

Tokens carry `iss` "mv-os" and `aud` "mv-os-<environment>", so a staging token is refused by production even
if both ever held the same secret."""

from __future__ import annotations

import datetime as dt
import functools
import re
import threading

import jwt
from flask import current_app, g, has_app_context, request
from werkzeug.security import check_password_hash, generate_password_hash

from mv_os.api import MAX_ID
from mv_os.concurrency import off_loop
from mv_os.errors import ApiError
from mv_os.models import User
from mv_os.settings import DEFAULT_PASSWORD_HASH_METHOD

ISSUER = "mv-os"
_CANONICAL_ID = re.compile(r"[1-9][0-9]{0,9}")
ALGORITHMS = ["HS256"]  # hard-coded: never taken from the token header


def password_hash_method() -> str:
    """werkzeug's default scrypt, unless the environment's policy honours PASSWORD_HASH_METHOD (local: the test
    suite's cheap scrypt parameters).  A staging or production app always gets the default, whatever its
    settings hold."""
    if has_app_context():
        settings = current_app.config["SETTINGS"]
        if settings.environment.policy.password_hash_override:
            return settings.password_hash_method
    return DEFAULT_PASSWORD_HASH_METHOD


@functools.cache
def _dummy_hash(method: str) -> str:
    """Checked against when the email is unknown, so a wrong email costs the same time as a wrong password:
    made with the method new passwords are hashed with.  Made on first use, not at import: scrypt is slow on
    purpose, and every worker and CLI process would pay for it."""
    return off_loop(generate_password_hash, "mv-os-timing-equalizer", method=method)


# Password hashes computed at once per worker process, and how long a login waits for a turn: with 0.1 s of CPU
# per hash, a login flood would otherwise take every core and starve webhook ingestion (docs/security.md).
HASH_SLOTS = 1
HASH_WAIT_SECONDS = 10.0
_hash_slots = threading.BoundedSemaphore(HASH_SLOTS)


def _bounded(fn, /, *args, **kwargs):
    """`fn` (a scrypt call) when one of this worker's HASH_SLOTS is free, else 503 after HASH_WAIT_SECONDS."""
    if not _hash_slots.acquire(timeout=HASH_WAIT_SECONDS):
        raise ApiError(503, "busy", "Too many logins at once; try again in a moment.", retry_after=1)
    try:
        return off_loop(fn, *args, **kwargs)
    finally:
        _hash_slots.release()


def hash_password(password: str, method: str | None = None) -> str:
    """scrypt with `method` (default: password_hash_method()); werkzeug stores the parameters in the hash.  The
    hashing runs on a thread of its own under gevent (concurrency.py), the method is read here (app context)."""
    return _bounded(generate_password_hash, password, method=method or password_hash_method())


def normalize_email(email: str) -> str:
    return email.strip().lower()


def authenticate(email: str, password: str) -> User | None:
    user = User.get_or_none(User.email == normalize_email(email))
    if user is None:
        _bounded(check_password_hash, _dummy_hash(password_hash_method()), password)
        return None
    # scrypt on a thread of its own (concurrency.py): under gevent a login would otherwise hold the worker 0.1 s.
    return user if _bounded(check_password_hash, user.password_hash, password) else None


def end_sessions(user: User) -> None:
    """Every token issued to `user` so far stops working (logout, password change)."""
    User.update(token_version=User.token_version + 1).where(User.id == user.id).execute()


def set_password(user: User, password: str) -> None:
    """A new password, and every token issued with the old one stops working (one UPDATE)."""
    User.update(password_hash=hash_password(password), token_version=User.token_version + 1).where(
        User.id == user.id
    ).execute()


def issue_token(user: User) -> dict:
    settings = current_app.config["SETTINGS"]
    now = dt.datetime.now(dt.UTC)
    claims = {
        "iss": ISSUER,
        "aud": settings.jwt_audience,
        "sub": str(user.id),
        "ver": user.token_version,  # logout and a password change bump it: every older token stops working
        "iat": now,
        "exp": now + dt.timedelta(seconds=settings.jwt_ttl_seconds),
    }
    token = jwt.encode(claims, settings.jwt_secret, algorithm="HS256")
    return {"access_token": token, "token_type": "Bearer", "expires_in": settings.jwt_ttl_seconds}


def verify_token(token: str) -> dict:
    settings = current_app.config["SETTINGS"]
    try:
        return jwt.decode(
            token,
            settings.jwt_secret,
            algorithms=ALGORITHMS,
            audience=settings.jwt_audience,
            issuer=ISSUER,
            options={"require": ["exp", "iss", "aud", "sub"]},
        )
    except jwt.ExpiredSignatureError:
        raise ApiError(401, "token_expired", "The access token has expired; log in again.") from None
    except jwt.InvalidTokenError:
        raise ApiError(401, "invalid_token", "The access token is not valid.") from None


def require_auth(view):
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "unauthorized", "A Bearer access token is required.")
        claims = verify_token(token.strip())
        sub = claims["sub"]
        # Only the form issue_token writes: " 1 ", "01", "+1" or "\u0661" never name user 1.
        if not isinstance(sub, str) or not _CANONICAL_ID.fullmatch(sub) or int(sub) > MAX_ID:
            raise ApiError(401, "invalid_token", "The access token is not valid.")
        user = User.get_or_none(User.id == int(sub))
        if user is None or claims.get("ver", 0) != user.token_version:
            raise ApiError(401, "invalid_token", "The access token is not valid.")
        g.user = user
        return view(*args, **kwargs)

    return wrapper
