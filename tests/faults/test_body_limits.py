"""Webhook body size: Meta's batches reach about 3 MB and are accepted; anything over the 4 MiB limit is
refused with 413 without the server reading it all (a declared Content-Length is refused before the body is
sent: tests/backend/webhooks/test_whatsapp.py; here, a chunked body with no declared length that never ends)."""

from __future__ import annotations

import json
import select
import socket

import pytest
import requests

from mv_os import MAX_CONTENT_LENGTH
from mv_os.meta.signing import signed_headers
from scripts.bench.payloads import SECRET
from tests.support.databases import truncate_all
from tests.support.servers import LiveServer, backend_env

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(migrated_url):
    # One gunicorn worker: the limits are per request, and the tests send one request at a time.
    live = LiveServer(backend_env(migrated_url, WEB_CONCURRENCY="1")).start()
    yield live
    live.kill()
    truncate_all(migrated_url)


def padded_body(size: int) -> bytes:
    """A valid webhook (an unknown change field, stored raw) of exactly `size` bytes."""
    head = b'{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"x","value":{"pad":"'
    tail = b'"}}]}]}'
    return head + b"a" * (size - len(head) - len(tail)) + tail


@pytest.mark.parametrize("size", [3_000_000, 3 * 1024 * 1024, MAX_CONTENT_LENGTH])
def test_bodies_up_to_the_limit_are_accepted(server, size):
    data = padded_body(size)
    assert json.loads(data)
    headers = signed_headers(SECRET, data)
    response = requests.post(server.url + "/webhooks/whatsapp", data=data, headers=headers, timeout=30)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(("size", "status"), [(MAX_CONTENT_LENGTH, 200), (MAX_CONTENT_LENGTH + 1, 413)])
def test_a_chunked_body_follows_the_same_limit(server, size, status):
    """One rule for both framings: a chunked body of exactly the limit is accepted, one byte more is not."""
    data = padded_body(size)
    headers = signed_headers(SECRET, data)

    def chunks():
        for start in range(0, len(data), 256 * 1024):
            yield data[start : start + 256 * 1024]

    response = requests.post(server.url + "/webhooks/whatsapp", data=chunks(), headers=headers, timeout=30)
    assert "Content-Length" not in response.request.headers
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"


def test_one_byte_over_the_limit_is_413(server):
    data = padded_body(MAX_CONTENT_LENGTH + 1)
    headers = signed_headers(SECRET, data)
    try:
        response = requests.post(server.url + "/webhooks/whatsapp", data=data, headers=headers, timeout=30)
    except requests.ConnectionError:
        pytest.fail("the server must answer 413, not drop the connection")
    assert response.status_code == 413


def test_an_endless_chunked_body_is_cut_off_with_413(server):
    """No Content-Length: the server stops reading at the limit and answers 413 while the client is still
    sending; a server that read the whole body would never answer."""
    port = int(server.url.rsplit(":", 1)[1])
    chunk = b"a" * 65536
    frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"POST /webhooks/whatsapp HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"X-Hub-Signature-256: sha256=00\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        while sent < 64 * MAX_CONTENT_LENGTH:
            if select.select([sock], [], [], 0)[0]:
                break
            try:
                sock.sendall(frame)
            except OSError:  # the server closed its side after answering
                break
            sent += len(chunk)
        answer = sock.recv(4096).decode("latin-1")
    assert answer.startswith("HTTP/1.1 413"), answer[:200]
    assert sent < 4 * MAX_CONTENT_LENGTH, f"the server read {sent} bytes before refusing"
