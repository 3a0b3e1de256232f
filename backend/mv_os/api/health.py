"""Liveness, readiness, version and the OpenAPI document."""

from __future__ import annotations

import json
import logging
from functools import cache
from pathlib import Path

from flask import Blueprint, current_app, jsonify

from mv_os import db

bp = Blueprint("health", __name__)
log = logging.getLogger("mv_os.health")
OPENAPI_PATH = Path(__file__).resolve().parent.parent / "openapi.json"


@bp.get("/healthz")
def healthz():
    """Liveness: the process answers.  Touches no database."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    """Readiness: the database answers and no migration is pending."""
    try:
        db.database.execute_sql("SELECT 1")
        pending = db.pending_migrations()
    except Exception as exc:  # noqa: BLE001 - any database failure means not ready
        log.warning("readiness check failed: %s", type(exc).__name__)
        return jsonify(status="unavailable", reason="database unavailable"), 503
    if pending:
        return jsonify(status="unavailable", reason="pending migrations", pending=pending), 503
    return jsonify(status="ok")


@bp.get("/version")
def version():
    settings = current_app.config["SETTINGS"]
    return jsonify(
        environment=settings.environment.value,
        git_sha=settings.git_sha,
        image_digest=settings.image_digest,
    )


@cache
def _openapi() -> dict:
    return json.loads(OPENAPI_PATH.read_text(encoding="utf-8"))


@bp.get("/openapi.json")
def openapi():
    return jsonify(_openapi())
