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


def error_body(code: str, message: str, **extra) -> dict:
    return {"error": {"code": code, "message": message, **extra}}


def error_response(status: int, code: str, message: str, **extra):
    return jsonify(error_body(code, message, **extra)), status


def database_unavailable(exc: Exception) -> ApiError:
    """A database error that means "not now" (down, restarting, every pooled connection busy): 503, so the
    caller (Meta, the inbox) tries again.  Logged with the exception's type only: its text may hold the URL."""
    log.warning("database unavailable: %s", type(exc).__name__)
    return ApiError(503, "database_unavailable", "The database is unavailable; try again shortly.")


def internal_error(exc: Exception) -> ApiError:
    log.exception("unhandled error: %s", type(exc).__name__, exc_info=exc)
    return ApiError(500, "internal_error", "Something went wrong on our side.")


# What `database_unavailable` answers for (peewee's errors, psycopg's are wrapped in them; MaxConnectionsExceeded:
# every pooled connection busy for the pool timeout).
UNAVAILABLE = (OperationalError, InterfaceError, MaxConnectionsExceeded)


def as_api_error(exc: Exception) -> ApiError:
    """The answer for any exception: Flask's error handler (below) and the webhook fast path use it."""
    if isinstance(exc, ApiError):
        return exc
    return database_unavailable(exc) if isinstance(exc, UNAVAILABLE) else internal_error(exc)


def _code_for(exc: HTTPException) -> str:
    name = (exc.name or "error").lower().replace(" ", "_").replace("'", "")
    return name


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        response = error_response(exc.status, exc.code, exc.message, **exc.extra)
        if "retry_after" in exc.extra:  # 429 and 503 that know when to come back
            response[0].headers["Retry-After"] = str(exc.extra["retry_after"])
        return response

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        # Werkzeug's descriptions are generic and never include request data.
        response = error_response(exc.code or 500, _code_for(exc), exc.description or exc.name)
        if exc.code == 405 and exc.valid_methods:
            response[0].headers["Allow"] = ", ".join(sorted(exc.valid_methods))
        return response

    @app.errorhandler(Exception)
    def _other(exc: Exception):  # database unavailable -> 503, anything else -> 500 (`as_api_error`)
        return _api_error(as_api_error(exc))
