"""One JSON error shape for every error: {"error": {"code": ..., "message": ...}}.  No stack trace, no secret."""

from __future__ import annotations

import logging

from flask import Flask, jsonify
from peewee import InterfaceError, OperationalError
from playhouse.pool import MaxConnectionsExceeded
from werkzeug.exceptions import HTTPException

log = logging.getLogger("mv_os.errors")


class ApiError(Exception):
    """Raise from a view to answer with a JSON error."""

    def __init__(self, status: int, code: str, message: str, **extra):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra


def error_response(status: int, code: str, message: str, **extra):
    body = {"error": {"code": code, "message": message, **extra}}
    return jsonify(body), status


def _code_for(exc: HTTPException) -> str:
    name = (exc.name or "error").lower().replace(" ", "_").replace("'", "")
    return name


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return error_response(exc.status, exc.code, exc.message, **exc.extra)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        # Werkzeug's descriptions are generic and never include request data.
        response = error_response(exc.code or 500, _code_for(exc), exc.description or exc.name)
        if exc.code == 405 and exc.valid_methods:
            response[0].headers["Allow"] = ", ".join(sorted(exc.valid_methods))
        return response

    @app.errorhandler(OperationalError)
    @app.errorhandler(InterfaceError)
    @app.errorhandler(MaxConnectionsExceeded)  # every pooled connection busy for the pool timeout
    def _db_unavailable(exc: Exception):
        log.warning("database unavailable: %s", type(exc).__name__)
        return error_response(503, "database_unavailable", "The database is unavailable; try again shortly.")

    @app.errorhandler(Exception)
    def _unhandled(exc: Exception):
        log.exception("unhandled error: %s", type(exc).__name__)
        return error_response(500, "internal_error", "Something went wrong on our side.")
