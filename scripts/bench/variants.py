"""Experiments, not product paths: MV-OS with parts of the webhook path cut out, to show where the time goes.

- `variants:no_db_app` -- the request path without the database (size, signature, JSON, request id, access
  log, then 200): what the app around the INSERT costs;
- `variants:no_processor_app` -- the request path as deployed, without the processor thread: what processing
  behind the request path costs while the load runs (nothing reaches the inbox: the exactly-once check then
  reports every message as missing).

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


def __getattr__(name: str):
    if name == "no_db_app":
        return _no_db_app()
    if name == "no_processor_app":
        return _no_processor_app()
    raise AttributeError(name)
