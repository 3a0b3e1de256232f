"""The server model (gunicorn.conf.py): gevent workers by default, gthread as the fallback.

What the gevent model has to get right, over real HTTP against gunicorn:
- every module sees greenlet-aware threading (gunicorn.conf.py patches before it imports mv_os): peewee's
  per-"thread" connection state must be per request, or API requests and the webhook processor of one worker
  share a transaction;
- a request waiting on Meta waits as a greenlet: webhooks are still acknowledged while every send hangs;
- GUNICORN_WORKER_CLASS=gthread still serves the same webhook path (the documented fallback);
- an unknown worker class stops start-up with one line that names the variable."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from mv_os import db
from mv_os.auth import hash_password
from mv_os.meta.signing import sign
from mv_os.models import User
from mv_os.settings import DEFAULT_PASSWORD_HASH_METHOD
from scripts.bench.payloads import SECRET, body, wamid
from tests.support.databases import scalar, truncate_all, wait_processed
from tests.support.servers import DEMO_PASSWORD, ROOT, STAGING_SECRETS, HangingMeta, LiveServer, backend_env, login

pytestmark = pytest.mark.slow


def post_webhook(
    server: LiveServer, run: str, seq: int, secret: str | None = None, *, worker: int = 0, session=requests
) -> requests.Response:
    """A signed single-message webhook with the wamid `wamid(run, worker, seq)`."""
    data = body([wamid(run, worker, seq)], worker * 100 + seq)
    signature = sign(SECRET if secret is None else secret, data)
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": signature}
    return session.post(server.url + "/webhooks/whatsapp", data=data, headers=headers, timeout=10)


@pytest.fixture(scope="module")
def local_server(migrated_url):
    """One gevent worker with the default local config, shared by the tests here that need nothing else."""
    server = LiveServer(backend_env(migrated_url, WEB_CONCURRENCY="1")).start()
    yield server
    server.kill()


def test_an_unknown_worker_class_stops_gunicorn_with_one_line(migrated_url):
    env = {**backend_env(migrated_url), "GUNICORN_WORKER_CLASS": "eventlet"}
    result = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), "mv_os:create_app()"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == ["mv-os: config error: GUNICORN_WORKER_CLASS must be one of gevent, gthread"], result.stderr


def test_api_requests_and_webhooks_at_once_in_one_worker_all_succeed(local_server, settings, user):
    """One gevent worker: API requests (pooled connections, transactions) interleave with webhooks (the intake)
    and the processor storing them.  When the patching came only after mv_os (and peewee) had been imported,
    the greenlets shared one connection state: the first request failed with 500 ("Attempting to close
    database while transaction is open") and the worker hung."""
    server = local_server
    headers = login(server, user.email)

    def client(worker: int) -> list[int]:
        codes = []
        with requests.Session() as session:
            for seq in range(15):
                if worker % 2:
                    response = session.get(server.url + "/api/conversations", headers=headers, timeout=10)
                else:
                    response = post_webhook(server, "mix", seq, worker=worker, session=session)
                codes.append(response.status_code)
        return codes

    with ThreadPoolExecutor(max_workers=6) as pool:
        codes = [code for result in pool.map(client, range(6)) for code in result]
    assert codes == [200] * 90
    wait_processed(settings.database_url)
    assert scalar(settings.database_url, "SELECT count(*) FROM messages WHERE wamid LIKE %s", ("%mix%",)) == 45


def test_webhooks_are_acknowledged_while_every_send_waits_on_a_hanging_meta(settings, user, conversation):
    """One worker, 8 sends hanging on Meta (which answers nothing until it is closed): in a thread-per-request
    model they would hold 8 threads and every webhook would wait behind them.  Here every webhook is answered while
    all 8 sends are still waiting; when Meta goes away, each send ends in a 503."""
    meta = HangingMeta()
    secret = STAGING_SECRETS["WHATSAPP_APP_SECRET"]
    env = backend_env(
        settings.database_url,
        **{**STAGING_SECRETS, "WHATSAPP_SEND_TIMEOUT": "60", "WHATSAPP_SEND_ATTEMPTS": "1"},
        WHATSAPP_API_BASE_URL=meta.url,
        WEB_CONCURRENCY="1",
    )
    server = LiveServer(env).start()
    try:
        headers = login(server, user.email)
        url = f"{server.url}/api/conversations/{conversation}/messages"
        with ThreadPoolExecutor(max_workers=8) as pool:
            sends = [
                pool.submit(requests.post, url, json={"text": f"Hallo {i}"}, headers=headers, timeout=30)
                for i in range(8)
            ]
            deadline = time.monotonic() + 5
            while len(meta.connections) < 8 and time.monotonic() < deadline:  # every send is waiting on Meta
                time.sleep(0.01)
            assert len(meta.connections) == 8
            answers = [post_webhook(server, "hang", seq, secret) for seq in range(10)]
            assert [a.status_code for a in answers] == [200] * 10
            assert all(not send.done() for send in sends), "a send stopped waiting on Meta before the webhooks"
            meta.close()
            assert [send.result(timeout=30).status_code for send in sends] == [503] * 8
    finally:
        meta.close()
        server.kill()


def test_the_gthread_fallback_serves_the_same_webhook_path(settings):
    server = LiveServer(backend_env(settings.database_url, WEB_CONCURRENCY="1", GUNICORN_WORKER_CLASS="gthread"))
    server.start()
    try:
        assert requests.get(server.url + "/readyz", timeout=5).status_code == 200
        first = post_webhook(server, "gthread", 1)
        again = post_webhook(server, "gthread", 1)
        assert first.status_code == again.status_code == 200
        assert (first.json()["duplicate"], again.json()["duplicate"]) == (False, True)
        wait_processed(settings.database_url)
        assert scalar(settings.database_url, "SELECT count(*) FROM messages WHERE wamid LIKE %s", ("%gthread%",)) == 1
    finally:
        server.kill()
        truncate_all(settings.database_url)  # no `app` fixture here to empty the tables


def test_logins_do_not_hold_up_webhooks_in_the_same_worker(local_server, app):
    """A login's scrypt check is 0.1 s of CPU with the deployed parameters (this user's hash has them, not the
    suite's cheap ones).  On the worker's only thread, 4 logins at once would hold every other request of that
    worker for 0.1 s at a time; on gevent's thread pool (concurrency.off_loop) they run beside them."""
    with app.app_context(), db.database.connection_context():
        email = User.create(
            email="scrypt-default@example.com",
            password_hash=hash_password(DEMO_PASSWORD, DEFAULT_PASSWORD_HASH_METHOD),
            display_name="Default cost",
        ).email
    server = local_server
    login(server, email)  # warm: the first login also connects and loads the user
    started = time.monotonic()
    login(server, email)
    one_login = time.monotonic() - started  # one whole hash, on this machine, now
    # Four at once: the login throttle counts attempts before their check (throttle.py), so more than its limit
    # (five) at once on one account would be refused.
    with ThreadPoolExecutor(max_workers=4) as pool:
        logins = [pool.submit(login, server, email) for _ in range(4)]
        waits = []
        with requests.Session() as session:
            while not all(f.done() for f in logins):
                started = time.monotonic()
                response = session.get(server.url + "/healthz", timeout=5)
                waits.append(time.monotonic() - started)
                assert response.status_code == 200
        for f in logins:
            f.result()
    # Held behind the hashing, nearly every request would wait for a large part of a login; beside it, a few ms.
    # Compared with one login timed in the same run, so a slow or busy machine slows both sides alike.  The
    # median, not the maximum: one slow moment must not decide.
    assert len(waits) >= 5
    wait = statistics.median(waits)
    assert wait < 0.25 * one_login, f"requests waited {wait:.3f}s (median); one login took {one_login:.3f}s"
