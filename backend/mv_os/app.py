"""The Flask application factory: settings, database, blueprints, error handlers, CLI, webhook fast path."""

from __future__ import annotations

import logging
import time

from flask import Flask, g, request
from flask.json.provider import DefaultJSONProvider

from mv_os import MAX_CONTENT_LENGTH, access, db
from mv_os.meta.values import loads_strict
from mv_os.settings import Settings, load_or_exit

log = logging.getLogger("mv_os")


def create_app(settings: Settings | None = None) -> Flask:
    from mv_os import frontend, logging_setup
    from mv_os.api import RowId, auth, conversations, health, messages
    from mv_os.cli import register_cli
    from mv_os.errors import register_error_handlers
    from mv_os.headers import SecurityHeaders
    from mv_os.providers import registry
    from mv_os.webhooks import processor as webhook_processor
    from mv_os.webhooks import whatsapp as whatsapp_webhooks
    from mv_os.webhooks.fastpath import WebhookFastPath

    if settings is None:
        settings = load_or_exit()
    logging_setup.configure(settings)
    if settings.ignored_credentials:
        log.warning(
            "local uses mock providers only: ignoring %s found in the environment",
            ", ".join(settings.ignored_credentials),
        )

    app = Flask("mv_os", static_folder=None)  # the package: app.name and app.logger are `mv_os`
    app.config["SETTINGS"] = settings
    app.config["MAX_CONTENT_LENGTH"] = MAX_CONTENT_LENGTH
    app.json = StrictJSONProvider(app)
    app.json.sort_keys = False
    app.url_map.converters["id"] = RowId

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
    # The usual Meta delivery is answered in front of Flask, by the same code (webhooks/fastpath.py).
    app.wsgi_app = WebhookFastPath(app, app.wsgi_app)
    app.wsgi_app = SecurityHeaders(app.wsgi_app, hsts=settings.environment.deployed)
    return app


class StrictJSONProvider(DefaultJSONProvider):
    """Request bodies are JSON as RFC 8259 defines it: `NaN` and `Infinity` are refused like any invalid JSON."""

    def loads(self, s, **kwargs):
        return loads_strict(s)


def _register_request_hooks(app: Flask) -> None:
    @app.before_request
    def _start():
        g.started = time.perf_counter()
        g.request_id = access.request_id(request.headers.get("X-Request-Id"))
        # No eager connect: peewee connects on the first query, so /healthz never touches the database.

    @app.after_request
    def _finish(response):
        response.headers["X-Request-Id"] = g.get("request_id", "")
        started = g.get("started", time.perf_counter())
        access.log_request(request.method, request.path, response.status_code, started, g.get("request_id"))
        return response

    @app.teardown_request
    def _close(_exc):
        if not db.database.is_closed():
            db.database.close()
