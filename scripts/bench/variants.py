"""Experiments, not product paths: MV-OS with parts of the webhook path cut out, to show where the time goes.

- `variants:no_db_app` -- the request path without the database (size, signature, JSON, request id, access
  line -- DEBUG for an accepted webhook -- then 200): what the app around the INSERT costs;
- `variants:no_processor_app` -- the request path as deployed, without the processor thread: what processing
  behind the request path costs while the load runs (nothing reaches the inbox: the exactly-once check then
  reports every message as missing);
- `variants:durable_floor_app` -- the least any design that keeps "200 only after a durable commit" can do: a
  bare WSGI function (no Flask, no request id, no access line) that reads the body, checks the signature and
  the JSON, archives it with the group commit, wakes the processor and answers 200.  Its ratio to the ceiling
  is about the most a webhook receiver can reach on a machine where PostgreSQL shares the cores.

`BENCH_MVOS_APP='scripts.bench.variants:no_db_app' nox -s bench`"""

from mv_os import create_app
from mv_os.webhooks import intake, processor


def _no_db_app():
    def archive(body: bytes) -> intake.Archived:
        return intake.Archived(payload_id=0, duplicate=False)

    intake.archive = archive
    return _no_processor_app()


def _no_processor_app():
    app = create_app()
    processor.shared.autostart = False
    del app.extensions["webhook_processor"]
    return app


def _durable_floor_app():
    import json

    from mv_os.meta.signing import ENVIRON_KEY, verify

    flask_app = create_app()  # binds the database; the processor works behind it as in MV-OS
    settings = flask_app.config["SETTINGS"]
    secret = settings.whatsapp_app_secret

    def app(environ, start_response):
        if environ.get("REQUEST_METHOD") != "POST":  # the bench's /healthz wait
            return flask_app(environ, start_response)
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        if not verify(secret, body, environ.get(ENVIRON_KEY, "")) or not isinstance(json.loads(body), dict):
            start_response("400 BAD REQUEST", [("Content-Length", "0")])
            return [b""]
        archived = intake.archive(body)
        processor.shared.arrived(settings.whatsapp_phone_number_id)
        out = b'{"status":"ok","duplicate":%s,"payload_id":%d}\n' % (
            b"true" if archived.duplicate else b"false",
            archived.payload_id,
        )
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(out)))])
        return [out]

    return app


def __getattr__(name: str):
    if name == "no_db_app":
        return _no_db_app()
    if name == "no_processor_app":
        return _no_processor_app()
    if name == "durable_floor_app":
        return _durable_floor_app()
    raise AttributeError(name)
