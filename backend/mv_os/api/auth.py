"""Login and the current user."""

from __future__ import annotations

from flask import Blueprint, g, jsonify, request

from mv_os.auth import authenticate, issue_token, require_auth
from mv_os.errors import ApiError

bp = Blueprint("auth", __name__, url_prefix="/api")


def json_body() -> dict:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "The request body must be a JSON object.")
    return body


@bp.post("/auth/login")
def login():
    body = json_body()
    email, password = body.get("email"), body.get("password")
    if not isinstance(email, str) or not isinstance(password, str) or not email or not password:
        raise ApiError(400, "invalid_request", "Both email and password are required strings.")
    user = authenticate(email, password)
    if user is None:
        raise ApiError(401, "invalid_credentials", "The email or password is wrong.")
    return jsonify(issue_token(user))


def user_json(user) -> dict:
    return {"id": user.id, "email": user.email, "display_name": user.display_name}


@bp.get("/me")
@require_auth
def me():
    return jsonify(user_json(g.user))
