"""Login (throttled per account and per client address), logout, password change and the current user."""

from __future__ import annotations

from flask import Blueprint, current_app, g, jsonify, request

from mv_os import throttle
from mv_os.auth import authenticate, end_sessions, issue_token, normalize_email, require_auth, set_password
from mv_os.errors import ApiError
from mv_os.models import User

bp = Blueprint("auth", __name__, url_prefix="/api")
MIN_PASSWORD_LENGTH = 8


def json_body() -> dict:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "The request body must be a JSON object.")
    return body


def _strings(body: dict, *names: str) -> list[str]:
    values = [body.get(name) for name in names]
    if not all(isinstance(v, str) and v for v in values):
        raise ApiError(400, "invalid_request", f"{' and '.join(names)} are required strings.")
    return values


def client_address() -> str:
    proxy_hops = current_app.config["SETTINGS"].environment.policy.proxy_hops
    return throttle.client_address(request.remote_addr, request.headers.get("X-Forwarded-For"), proxy_hops)


@bp.post("/auth/login")
def login():
    email, password = _strings(json_body(), "email", "password")
    user = _checked(normalize_email(email), password)
    if user is None:
        raise ApiError(401, "invalid_credentials", "The email or password is wrong.")
    return jsonify(issue_token(user))


def _checked(email: str, password: str) -> User | None:
    """authenticate() behind the throttle: 429 while the account or address is locked, attempts counted."""
    try:
        attempt = throttle.begin(email, client_address())
    except throttle.Locked as locked:
        message = "Too many failed logins; try again later."
        raise ApiError(429, "too_many_attempts", message, retry_after=locked.retry_after) from None
    user = authenticate(email, password)
    if user is None:
        throttle.failed(attempt)
    else:
        throttle.succeeded(attempt)
    return user


@bp.post("/auth/logout")
@require_auth
def logout():
    """Ends every session of this user (all their tokens), not only this one."""
    end_sessions(g.user)
    return "", 204


@bp.post("/auth/password")
@require_auth
def change_password():
    """`{"current_password", "new_password"}`: ends every session; log in again with the new password."""
    current, new = _strings(json_body(), "current_password", "new_password")
    if len(new) < MIN_PASSWORD_LENGTH:
        raise ApiError(400, "invalid_request", f"new_password must be at least {MIN_PASSWORD_LENGTH} characters.")
    if _checked(g.user.email, current) is None:
        raise ApiError(403, "invalid_credentials", "The current password is wrong.")
    set_password(g.user, new)
    return "", 204


def user_json(user) -> dict:
    return {"id": user.id, "email": user.email, "display_name": user.display_name}


@bp.get("/me")
@require_auth
def me():
    return jsonify(user_json(g.user))
