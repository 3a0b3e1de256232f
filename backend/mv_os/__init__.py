"""MV-OS backend: `create_app()` is the Flask application factory (gunicorn: `mv_os:create_app()`)."""

from __future__ import annotations

import logging
import re
import time
import uuid

from flask import Flask, g, request

from mv_os import db
from mv_os.settings import Settings, load_or_exit

log = logging.getLogger("mv_os")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
# Meta sends webhook batches up to about 3 MB; nothing else we accept is larger.
MAX_CONTENT_LENGTH = 4 * 1024 * 1024


def create_app(settings: Settings | None = None) -> Flask:
    from mv_os import frontend, logging_setup
    from mv_os.api import auth, conversations, health, messages
    from mv_os.cli import register_cli
    from mv_os.errors import register_error_handlers
    from mv_os.providers import registry
    from mv_os.webhooks import processor as webhook_processor
    from mv_os.webhooks import whatsapp as whatsapp_webhooks

    if settings is None:
        settings = load_or_exit()
    logging_setup.configure(settings)
    if settings.ignored_credentials:
        log.warning(
            "local uses mock providers only: ignoring %s found in the environment",
            ", ".join(settings.ignored_credentials),
        )

    app = Flask(__name__, static_folder=None)
    app.config["SETTINGS"] = settings
    app.config["MAX_CONTENT_LENGTH"] = MAX_CONTENT_LENGTH
    app.json.sort_keys = False

    db.bind(settings.database_url, settings.db_max_connections)

    _register_request_hooks(app)
    register_error_handlers(app)
    # The messaging provider of this environment (local: mock); tests replace this entry.
    app.extensions["messaging"] = registry.messaging(settings)
    # Stores webhook payloads' messages behind the request path; the server starts it (gunicorn.conf.py).
    app.extensions["webhook_processor"] = webhook_processor.shared
    for blueprint in (health.bp, auth.bp, conversations.bp, messages.bp, whatsapp_webhooks.bp):
        app.register_blueprint(blueprint)
    app.register_blueprint(frontend.bp)  # the static inbox at /, its runtime /config.json
    register_cli(app)
    return app


def _register_request_hooks(app: Flask) -> None:
    access = logging.getLogger("mv_os.access")

    @app.before_request
    def _start():
        g.started = time.perf_counter()
        incoming = request.headers.get("X-Request-Id", "")
        g.request_id = incoming if _REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
        # No eager connect: peewee connects on the first query, so /healthz never touches the database.

    @app.after_request
    def _finish(response):
        response.headers["X-Request-Id"] = g.get("request_id", "")
        duration_ms = round((time.perf_counter() - g.get("started", time.perf_counter())) * 1000, 2)
        access.info(
            "%s %s %s %.1fms",
            request.method,
            request.path,
            response.status_code,
            duration_ms,
            extra={
                "request_id": g.get("request_id"),
                "method": request.method,
                "path": request.path,
                "status": response.status_code,
                "duration_ms": duration_ms,
            },
        )
        return response

    @app.teardown_request
    def _close(_exc):
        if not db.database.is_closed():
            db.database.close()
