"""SIGTERM to gunicorn under load (what App Runner sends on every deploy and scale-in): requests in flight
finish within the graceful timeout, and nothing that was acknowledged is missing: every acknowledged body is in
the archive when the old instance is gone, and the next instance's processor stores each of its messages once."""

from __future__ import annotations

import signal
import time

import pytest

from tests.support.databases import truncate_all, wait_processed
from tests.support.load import Load, archived_digests, digest, stored_wamids
from tests.support.servers import LiveServer, backend_env

pytestmark = pytest.mark.slow

GRACEFUL = 5


def test_sigterm_under_load_finishes_in_flight_requests_and_loses_no_acknowledged_message(migrated_url):
    server = LiveServer(backend_env(migrated_url, GUNICORN_GRACEFUL_TIMEOUT=str(GRACEFUL))).start()
    try:
        # Eight clients back to back; 5 messages a POST (20 made the successor's processing cost a second of CPU
        # more, and proved nothing else).
        load = Load(server.url, "sigterm", threads=8, per_post=5).start()
        load.wait_for(lambda ds: sum(d.status == 200 for d in ds) >= 24)  # in full swing
        server.proc.send_signal(signal.SIGTERM)
        term_at = time.monotonic()
        # Well inside the platform's SIGKILL deadline (ECS: 30 s after SIGTERM); how much of the graceful timeout
        # the shutdown takes depends on the machine's load, so the bound is generous.
        server.proc.wait(timeout=GRACEFUL + 10)
        deliveries = load.stop()
    finally:
        server.stop()
    try:
        answered = [d for d in deliveries if d.status is not None]
        assert {d.status for d in answered} == {200}, "an accepted request must be finished, not failed"
        in_flight = [d for d in answered if d.started < term_at < d.finished]
        assert in_flight, "no request was in flight at SIGTERM (the test did not exercise the shutdown)"
        missing = {digest(d) for d in answered} - archived_digests(migrated_url)
        assert not missing, f"{len(missing)} acknowledged webhook bodies are not in the archive"
        # What the stopped instance had not processed yet, the next one (a deploy's new instance) does.
        successor = LiveServer(backend_env(migrated_url, WEB_CONCURRENCY="1")).start()  # one processor suffices
        try:
            wait_processed(migrated_url, timeout=30)
        finally:
            successor.kill()
        acknowledged = {w for d in answered for w in d.wamids}
        stored = stored_wamids(migrated_url, "sigterm")
        assert acknowledged <= stored.keys(), f"{len(acknowledged - stored.keys())} acknowledged messages missing"
        assert set(stored.values()) == {1}
    finally:
        truncate_all(migrated_url)
