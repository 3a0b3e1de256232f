"""Experiments, not product paths: MV-OS with the webhook's ingest cut down, to show where the time goes.

- `archive_only:app` -- the ingest is only the archive insert (the exact bytes, durably committed, then 200):
  what a "store the raw event on the request path, process it behind" design could reach on this machine;
- `archive_only:no_db_app` -- no database at all (size, signature, JSON, logging, then 200): the cost of the
  app around the database.

`BENCH_MVOS_APP=scripts.bench.archive_only:app nox -s bench` (the exactly-once check then reports every message
as missing: nothing is processed)."""

import contextlib

from mv_os import create_app
from mv_os.webhooks import ingest as ingest_module
from mv_os.webhooks import whatsapp


def _archive_only(body: bytes, payload: dict, *, default_phone_number_id: str) -> ingest_module.IngestResult:
    payload_id, first_time = ingest_module.archive(body)
    return ingest_module.IngestResult(payload_id=payload_id, duplicate=not first_time)


def _nothing(body: bytes, payload: dict, *, default_phone_number_id: str) -> ingest_module.IngestResult:
    return ingest_module.IngestResult(payload_id=0)


class _NoDatabase:
    def atomic(self):
        return contextlib.nullcontext()

    def is_closed(self):
        return True


def _variant(name: str):
    if name == "no_db_app":
        whatsapp.ingest = _nothing
        whatsapp.database = _NoDatabase()
    else:
        whatsapp.ingest = _archive_only
    return create_app()


def __getattr__(name: str):
    if name in ("app", "no_db_app"):
        return _variant(name)
    raise AttributeError(name)
