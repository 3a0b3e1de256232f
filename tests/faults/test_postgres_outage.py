"""PostgreSQL goes away in the middle of a load: no webhook is acknowledged that is not stored.

Runs on a throwaway server in a temporary folder (never the shared test server), crashed with `pg_ctl -m
immediate` while gunicorn takes webhooks, then started again."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from mv_os import create_app, db
from mv_os.localdb import ensure_database
from mv_os.settings import Settings
from tests.support.databases import wait_processed
from tests.support.load import Load, ThrowawayPostgres, archived_digests, digest, post, stored_wamids
from tests.support.servers import LiveServer, backend_env

pytestmark = pytest.mark.slow


@pytest.fixture
def postgres(state_dir):
    pg = ThrowawayPostgres(state_dir / "pg")  # not under /tmp/pytest-of-*: conftest's state_dir says why
    yield pg
    pg.cleanup()


def test_postgres_crash_mid_load_answers_503_never_200_and_replay_stores_each_message_once(postgres):
    url = ensure_database(postgres.url(), "mv_os_fault")
    app = create_app(Settings(database_url=url, log_level="WARNING"))
    with app.app_context():
        db.migrate()
    db.database.obj.close_all()

    server = LiveServer(backend_env(url)).start()
    try:
        load = Load(server.url, "outage", threads=4).start()
        load.wait_for(lambda ds: sum(d.status == 200 for d in ds) >= 40)  # acknowledged before the crash
        postgres.crash()
        down_since = time.monotonic()
        load.wait_for(lambda ds: sum(d.started > down_since and d.status is not None for d in ds) >= 20)
        deliveries = load.stop()

        during = [d for d in deliveries if d.started > down_since]
        assert during, "no webhook was posted while the database was down"
        assert {d.status for d in during} == {503}, "while PostgreSQL is down every webhook must get 503"
        assert {d.status for d in deliveries} <= {200, 503}, "only 200 (stored) or 503 (retry) are acceptable"
        acknowledged = {w for d in deliveries if d.status == 200 for w in d.wamids}
        assert acknowledged, "nothing was acknowledged before the crash"

        postgres.restart()
        assert postgres.url("mv_os_fault") == url
        # Crash recovery kept every body that was acknowledged (committed before its 200).
        missing = {digest(d) for d in deliveries if d.status == 200} - archived_digests(url)
        assert not missing, f"{len(missing)} acknowledged bodies were lost in the crash"
        # Meta delivers again what was not acknowledged; and re-delivers some of what was (it may).
        with ThreadPoolExecutor(max_workers=8) as pool:
            replayed = list(pool.map(lambda d: post(server.url, d), deliveries))
        wait_processed(url, timeout=30)  # the processor stores what was archived (it retried during the outage)
    finally:
        log = server.kill()
    assert replayed == [200] * len(deliveries), log[-3000:]

    stored = stored_wamids(url, "outage")
    assert acknowledged <= stored.keys(), "a message acknowledged before the crash was lost"
    assert stored.keys() == {w for d in deliveries for w in d.wamids}
    assert set(stored.values()) == {1}
