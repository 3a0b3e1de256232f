"""`POST /webhooks/whatsapp` answered in front of Flask: the hot path of a reply storm.

A WSGI middleware (installed by `create_app` as `app.wsgi_app`) that answers the usual delivery -- a body
with a Content-Length within the limit -- with the very same steps as the Flask route: `whatsapp.accept()`
decides, the app's JSON provider renders, `access.log_request` logs, and errors get the same JSON and log
lines as Flask's handlers.  Flask's per-request machinery is skipped because at a storm's rate it costs about
as much CPU as the durable write.  Everything else (other paths and methods, chunked or oversized bodies, a
body cut short) goes to Flask unchanged; tests/backend/webhooks/test_fastpath.py holds both paths to
identical answers."""

from __future__ import annotations

import io
import time

from werkzeug.http import HTTP_STATUS_CODES

from mv_os import access
from mv_os.errors import as_api_error, error_body
from mv_os.meta.signing import ENVIRON_KEY
from mv_os.webhooks import whatsapp

PATH = "/webhooks/whatsapp"


class WebhookFastPath:
    def __init__(self, app, wsgi_app):
        self.app = app
        self.wsgi_app = wsgi_app  # Flask's own: everything this class does not answer

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") != PATH or environ.get("REQUEST_METHOD") != "POST":
            return self.wsgi_app(environ, start_response)
        declared = environ.get("CONTENT_LENGTH") or ""
        if not declared.isdigit() or int(declared) > self.app.config["MAX_CONTENT_LENGTH"]:
            return self.wsgi_app(environ, start_response)  # chunked or too large: Flask streams or refuses it
        started = time.perf_counter()  # like Flask's request hook: the duration includes reading the body
        length = int(declared)
        body = environ["wsgi.input"].read(length) if length else b""
        if len(body) != length:  # the client went away mid-body: let werkzeug answer it as it always does
            environ["wsgi.input"] = io.BytesIO(body)
            return self.wsgi_app(environ, start_response)

        request_id = access.request_id(environ.get("HTTP_X_REQUEST_ID"))
        settings = self.app.config["SETTINGS"]
        try:
            status, payload = 200, whatsapp.accepted(whatsapp.accept(settings, body, environ.get(ENVIRON_KEY)))
        except Exception as exc:  # noqa: BLE001 - as Flask's error handlers would answer it (errors.py)
            error = as_api_error(exc)
            status, payload = error.status, error_body(error.code, error.message, **error.extra)
        out = self._render(payload)
        start_response(
            f"{status} {HTTP_STATUS_CODES[status].upper()}",
            [("Content-Type", "application/json"), ("Content-Length", str(len(out))), ("X-Request-Id", request_id)],
        )
        access.log_request("POST", PATH, status, started, request_id)
        return [out]

    def _render(self, payload: dict) -> bytes:
        """What `jsonify(payload)` would send: the app's JSON provider, compact unless Flask would indent."""
        provider = self.app.json
        compact = getattr(provider, "compact", None)
        if (compact is None and self.app.debug) or compact is False:
            text = provider.dumps(payload, indent=2)
        else:
            text = provider.dumps(payload, separators=(",", ":"))
        return (text + "\n").encode()
