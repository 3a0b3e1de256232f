"""The quickstart's `nox -s dev` path: `python -m mv_os.devserver` migrates, seeds, prints, serves."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.support.servers import ROOT, TEST_PASSWORD_HASH_METHOD, backend_env, free_port, wait_answering


def start_devserver(env: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "mv_os.devserver", "--no-reload", *args],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_healthy(proc: subprocess.Popen, url: str, timeout: float = 60) -> None:
    wait_answering(url, lambda: None if proc.poll() is None else proc.stdout.read(), timeout)


def stop(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGINT)
    try:
        out, _ = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out


def dev_env(**extra: str) -> dict[str, str]:
    env = backend_env("unused", **extra)
    env.pop("DATABASE_URL")
    env.pop("NODE_ENV")
    env["LOG_LEVEL"] = "INFO"
    env["PASSWORD_HASH_METHOD"] = TEST_PASSWORD_HASH_METHOD  # seed-demo and the logins: cheap scrypt (local)
    env.update(extra)
    return env


@pytest.mark.slow
def test_dev_with_database_url_migrates_seeds_prints_and_serves(migrated_url, settings):
    port = free_port()
    proc = start_devserver(dev_env(DATABASE_URL=migrated_url, PORT=str(port)))
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(proc, url)
        assert requests.get(url + "/readyz", timeout=5).status_code == 200
        assert requests.get(url + "/version", timeout=5).json()["environment"] == "local"
        login = requests.post(
            url + "/api/auth/login",
            timeout=5,
            json={"email": "demo@mv-os.local", "password": "demo-password"},
        )
        assert login.status_code == 200
    finally:
        out = stop(proc)
    assert f"URL:        http://127.0.0.1:{port}" in out
    assert "demo login: demo@mv-os.local / demo-password" in out
    from tests.support.databases import truncate_all

    truncate_all(migrated_url)


@pytest.mark.slow
def test_dev_refuses_a_cloud_environment():
    proc = start_devserver(dev_env(NODE_ENV="staging", PORT=str(free_port())))
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode != 0
    assert "NODE_ENV=local only" in out


def postgres_running(data_dir: Path) -> bool:
    from mv_os.localdb import postmaster_pid

    return postmaster_pid(data_dir) is not None


def wait_stopped(data_dir: Path, timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while postgres_running(data_dir) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not postgres_running(data_dir)


@pytest.mark.slow
@pytest.mark.skipif(sys.version_info >= (3, 13), reason="pgserver wheels cover CPython 3.9-3.12 only")
def test_dev_without_database_url_uses_the_embedded_server_keeps_data_and_stops_it(state_dir):
    state = state_dir
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = dev_env(MV_OS_STATE_DIR=str(state), PORT=str(port), DEMO_PASSWORD="first-password")
    pgdata = state / "pgdata"
    proc = start_devserver(env)
    try:
        wait_healthy(proc, url, timeout=90)
        assert requests.get(url + "/readyz", timeout=5).status_code == 200
    finally:
        first = stop(proc)
    assert "embedded PostgreSQL ready" in first
    assert "applied migration 0001_initial" in first
    assert (pgdata / "PG_VERSION").exists()
    assert wait_stopped(pgdata), "the embedded PostgreSQL outlived the command that started it"

    # Second run: same data folder, nothing to migrate, the demo user is still there.
    proc = start_devserver(env)
    try:
        wait_healthy(proc, url, timeout=60)
        login = requests.post(
            url + "/api/auth/login",
            timeout=5,
            json={"email": "demo@mv-os.local", "password": "first-password"},  # pragma: allowlist secret (test value)
        )
        assert login.status_code == 200
    finally:
        second = stop(proc)
    assert "applied migration" not in second
    assert wait_stopped(pgdata)


def test_dev_reads_the_local_frontend_and_backend_templates(tmp_path, monkeypatch):
    from mv_os import devserver

    env_dir = tmp_path / "env"
    env_dir.mkdir()
    (env_dir / "backend.env.local.example").write_text("DEMO_EMAIL=from-template@example.com\n")
    (env_dir / "frontend.env.local.example").write_text("FRONTEND_POLL_INTERVAL_MS=3000\n")
    (env_dir / "frontend.env.local").write_text("FRONTEND_POLL_INTERVAL_MS=750\n")
    monkeypatch.setattr(devserver, "ENV_DIR", env_dir)
    assert devserver.local_env_defaults() == {
        "DEMO_EMAIL": "from-template@example.com",
        "FRONTEND_POLL_INTERVAL_MS": "750",  # a developer's own file wins over the template
    }
