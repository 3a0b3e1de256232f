"""A slow or hanging Meta API (local fakes): every send gives up within its bound and the API answers 503; no
gunicorn thread stays stuck.  Hanging = accepts and never answers (caught by the read timeout); dripping =
answers one byte at a time, each within the read timeout (caught only by the adapter's per-attempt deadline)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from mv_os import db
from mv_os.models import Message
from mv_os.providers.base import RetryableProviderError
from mv_os.providers.whatsapp_cloud import WhatsAppCloudMessaging
from tests.support.servers import STAGING_SECRETS, HangingMeta, LiveServer, backend_env, login

pytestmark = pytest.mark.slow

SEND_TIMEOUT = 0.5  # seconds; each of the 8 sends below waits this long for the hanging Meta


class DrippingMeta(HangingMeta):
    """Reads the request, then sends a status line and one header byte every 0.05 s, for ever."""

    def _serve(self, conn):
        threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn):
        try:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
            while True:
                conn.sendall(b"a")
                time.sleep(0.05)
        except OSError:
            return


def test_a_dripping_meta_is_cut_off_at_the_attempt_deadline_and_not_retried():
    meta = DrippingMeta()
    adapter = WhatsAppCloudMessaging(
        access_token="test-token",
        phone_number_id="106540352242922",
        base_url=meta.url,
        timeout=0.25,  # five drips per read timeout: only the attempt deadline can stop it
        connect_timeout=0.25,
        max_attempts=3,
    )
    started = time.monotonic()
    try:
        with pytest.raises(RetryableProviderError) as failure:
            adapter.send_text("4915112345678", "Hallo")
        elapsed = time.monotonic() - started
    finally:
        meta.close()
    assert elapsed < 2.0, f"the send took {elapsed:.1f}s with a 0.5s deadline (read timeout 0.25s per byte)"
    assert failure.value.safe_to_retry is False  # Meta may have sent it: never sent twice
    assert len(meta.connections) == 1


def test_hanging_meta_times_out_to_503_within_the_bound_and_frees_every_worker(settings, user, conversation):
    meta = HangingMeta()
    env = backend_env(
        settings.database_url,
        **{**STAGING_SECRETS, "WHATSAPP_SEND_TIMEOUT": str(SEND_TIMEOUT), "WHATSAPP_SEND_ATTEMPTS": "3"},
        WHATSAPP_API_BASE_URL=meta.url,
        WEB_CONCURRENCY="2",
        GUNICORN_THREADS="4",  # for GUNICORN_WORKER_CLASS=gthread: the 8 sends below then occupy every thread
    )
    server = LiveServer(env).start()
    try:
        headers = login(server, user.email)
        url = f"{server.url}/api/conversations/{conversation}/messages"

        def send(i):
            started = time.monotonic()
            response = requests.post(url, json={"text": f"Hallo {i}"}, headers=headers, timeout=30)
            return response, time.monotonic() - started

        # 8 sends wait on Meta at once (gevent: 8 greenlets; the gthread fallback: all 2 x 4 threads).
        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(send, range(8)))
        for response, elapsed in results:
            assert response.status_code == 503, response.text
            assert response.json()["error"]["code"] == "provider_unavailable"
            assert elapsed < SEND_TIMEOUT + 3, f"a send took {elapsed:.1f}s with a {SEND_TIMEOUT}s timeout"
        # A read timeout is never retried (Meta may have sent it): one connection per send, not three.
        assert len(meta.connections) == 8

        # No worker is stuck: 16 requests at once are all served promptly.
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=16) as pool:
            codes = list(pool.map(lambda _: requests.get(server.url + "/healthz", timeout=5).status_code, range(16)))
        assert codes == [200] * 16
        assert time.monotonic() - started < 3
    finally:
        meta.close()
        server.kill()
    with db.database.connection_context():
        # Stored before the call, none shown as sent: each is pending, marked as not confirmed by Meta.
        stored = [(m.status, m.wamid, m.error_code) for m in Message.select()]
    assert stored == [("pending", None, "provider_timeout")] * 8
