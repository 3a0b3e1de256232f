"""The GitHub client tries an idempotent call again when the connection drops (a keep-alive connection the
server closed, a network blip), and never repeats a POST, which could create something twice."""

from __future__ import annotations

import contextlib
import socket
import threading

import pytest

from scripts.github.api import GitHub, GitHubError

BODY = b'{"ok": true}'
OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (
    len(BODY),
    BODY,
)


class DropsFirstConnection:
    """127.0.0.1 server: the first connection is closed without an answer, later ones get 200 {"ok": true}."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(5)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.requests: list[bytes] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        for n in range(3):  # bounded: at most three connections
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                self.requests.append(conn.recv(65536).split(b"\r\n", 1)[0])
                if n > 0:
                    conn.sendall(OK)

    def close(self):
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() above (close alone would not)
        self.sock.close()
        self.thread.join(timeout=5)


@pytest.fixture
def server():
    srv = DropsFirstConnection()
    yield srv
    srv.close()


def test_a_get_is_tried_again_after_a_dropped_connection(server):
    github = GitHub("mv-os/mv-os", token=None, api_url=server.url, timeout=5)
    assert github.get("/repos/mv-os/mv-os") == {"ok": True}
    assert server.requests == [b"GET /repos/mv-os/mv-os HTTP/1.1"] * 2


def test_a_post_is_never_sent_twice(server):
    github = GitHub("mv-os/mv-os", token=None, api_url=server.url, timeout=5)
    with pytest.raises(GitHubError, match="cannot reach"):
        github.request("POST", "/repos/mv-os/mv-os/environments", json={})
    assert server.requests == [b"POST /repos/mv-os/mv-os/environments HTTP/1.1"]
