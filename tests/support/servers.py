"""Live servers on 127.0.0.1: gunicorn running the app (`LiveServer`), its environment, a logged-in client,
and fake Metas that never answer."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
DEMO_PASSWORD = "correct horse battery staple"  # pragma: allowlist secret (test value)
# The tests' PASSWORD_HASH_METHOD (local only; README "Testing"): cheap scrypt parameters.  test_auth.py and
# test_settings.py prove that without the variable, and always in staging/production, passwords get
# werkzeug's default scrypt parameters.
TEST_PASSWORD_HASH_METHOD = "scrypt:1024:8:1"  # pragma: allowlist secret (a hash method name)


def cloud_credentials() -> dict[str, str]:
    """Random credentials for a staging or production app under test: staging and production refuse any value
    committed to the repository (backend/mv_os/committed.py), so tests make theirs when they run."""
    return {
        "JWT_SECRET": secrets.token_urlsafe(32),
        "WHATSAPP_APP_SECRET": secrets.token_hex(16),
        "WHATSAPP_VERIFY_TOKEN": secrets.token_urlsafe(16),
        "WHATSAPP_ACCESS_TOKEN": "EAAG" + secrets.token_urlsafe(24),
    }


# A staging server's credentials (fake Meta behind WHATSAPP_API_BASE_URL), quick to give up on a send.
STAGING_SECRETS = {
    "NODE_ENV": "staging",
    **cloud_credentials(),
    "WHATSAPP_PHONE_NUMBER_ID": "106540352242922",
    "WHATSAPP_SEND_ATTEMPTS": "2",
    "WHATSAPP_RETRY_BACKOFF": "0.01",
    "WHATSAPP_SEND_TIMEOUT": "2",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def backend_env(database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WHATSAPP_", "JWT_", "NODE_ENV"))}
    env.update(
        NODE_ENV="local",
        DATABASE_URL=database_url,
        PYTHONPATH=os.pathsep.join([str(ROOT / "backend"), str(ROOT)]),
        LOG_LEVEL="WARNING",
    )
    env.pop("PASSWORD_HASH_METHOD", None)
    env.update(extra)
    return env


class LiveServer:
    """gunicorn running `mv_os:create_app()` with gunicorn.conf.py, on 127.0.0.1:<free port>."""

    def __init__(self, env: dict[str, str]):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**env, "PORT": str(self.port), "BIND_HOST": "127.0.0.1"}
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 20.0) -> LiveServer:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), "mv_os:create_app()"],
            env=self.env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            process_group=0,  # master and workers in a group of their own: `kill()` ends them all at once
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited early:\n{self.proc.stdout.read()}")
            try:
                if requests.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except (requests.ConnectionError, requests.Timeout):  # a worker still booting (busy CPU)
                time.sleep(0.02)
        self.stop()
        raise RuntimeError("gunicorn did not answer /healthz in time")

    def stop(self) -> str:
        """Graceful: SIGTERM, gunicorn finishes what is in flight (its workers notice within about 0.5 s).
        Returns the server's output."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.stdout.read() if self.proc and self.proc.stdout else ""

    def kill(self) -> str:
        """Immediate: SIGKILL to master and workers (their process group), for a server whose test is over or
        that should just vanish; nothing graceful is being tested.  Returns the server's output."""
        if self.proc and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        return self.proc.stdout.read() if self.proc and self.proc.stdout else ""


def login(server: LiveServer, email: str) -> dict:
    response = requests.post(
        server.url + "/api/auth/login", json={"email": email, "password": DEMO_PASSWORD}, timeout=10
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


class HangingMeta:
    """Accepts connections on 127.0.0.1, reads the request, never answers until closed."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.connections: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections.append(conn)
            self._serve(conn)

    def _serve(self, conn):
        """Hanging: hold the connection open and say nothing."""

    def close(self):
        self.sock.close()
        for conn in self.connections:
            conn.close()


def wait_answering(url: str, output: Callable[[], str | None], timeout: float = 60) -> None:
    """Wait until `url`/healthz answers 200.  `output` returns the process's output once it has exited (None
    while it runs), so a server that dies says why instead of timing out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (died := output()) is not None:
            raise AssertionError(f"exited before answering:\n{died[-3000:]}")
        try:
            if requests.get(url + "/healthz", timeout=5).status_code == 200:
                return
        except requests.RequestException:  # not listening yet, or too busy starting to answer
            time.sleep(0.05)
    raise AssertionError(f"{url} did not answer in {timeout:.0f}s")
