"""The image, without a Docker engine: the Dockerfile's promises read from the file, and the image's exact start
command (scripts/docker-entrypoint.sh) run outside a container against a fresh real PostgreSQL database."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from mv_os.localdb import drop_database, ensure_database
from tests.support.databases import admin_url
from tests.support.servers import backend_env, free_port

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
ENTRYPOINT = ROOT / "scripts" / "docker-entrypoint.sh"


def instructions() -> list[tuple[str, str]]:
    code = "\n".join(line for line in DOCKERFILE.splitlines() if not line.lstrip().startswith("#"))
    joined = re.sub(r"\\\n", " ", code)
    matches = (re.match(r"^\s*([A-Za-z]+)\s+(.*)$", line) for line in joined.splitlines())
    return [(m[1].upper(), m[2].strip()) for m in matches if m]


def test_base_image_is_pinned_by_digest_and_stages_are_named():
    froms = [arg for op, arg in instructions() if op == "FROM"]
    assert len(froms) >= 2  # multi-stage
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm@sha256:[0-9a-f]{64} AS base", froms[0])
    assert all(f.startswith("base AS ") for f in froms[1:])


def test_dependencies_come_from_the_hashed_lock_before_any_code():
    ops = instructions()
    install = next(i for i, (op, arg) in enumerate(ops) if op == "RUN" and "--require-hashes" in arg)
    assert "requirements-app.txt" in ops[install][1]
    first_code = next(i for i, (op, arg) in enumerate(ops) if op == "COPY" and "backend/mv_os" in arg)
    assert install < first_code


def test_runs_as_non_root_on_8080_with_the_entrypoint_script():
    ops = instructions()
    user = [arg for op, arg in ops if op == "USER"]
    assert user and not user[-1].startswith(("root", "0"))
    assert ("EXPOSE", "8080") in ops
    assert any(op == "ENV" and "PORT=8080" in arg for op, arg in ops)
    assert ("ENTRYPOINT", '["/app/scripts/docker-entrypoint.sh"]') in ops
    assert any(op == "ARG" and arg.startswith("GIT_SHA") for op, arg in ops)
    assert any(op == "LABEL" and "org.opencontainers.image.revision" in arg for op, arg in ops)


def test_every_copied_path_is_in_the_build_context():
    """.dockerignore admits exactly what the Dockerfile copies (a missing one would fail the CI build)."""
    allowed = [
        line[1:].rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines() if line.startswith("!")
    ]
    copied = [arg.split()[0] for op, arg in instructions() if op == "COPY" and not arg.startswith("--from")]
    for path in copied:
        assert any(path == a or path.startswith(a + "/") for a in allowed), path
        assert (ROOT / path).exists(), path


def test_entrypoint_migrates_then_execs_gunicorn():
    script = ENTRYPOINT.read_text()
    assert os.access(ENTRYPOINT, os.X_OK)
    assert script.index("flask --app mv_os migrate") < script.index(
        "exec gunicorn -c gunicorn.conf.py 'mv_os:create_app()'"
    )


@pytest.fixture
def fresh_database():
    """A database with no tables at all, as a first deploy finds it."""
    admin = admin_url()
    name = f"mv_os_entrypoint_{os.getpid()}"
    url = ensure_database(admin, name, recreate=True)
    yield url
    drop_database(admin, name)


def _start(url: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    # One worker and a short graceful stop keep this quick on a small CI machine; the script is unchanged.
    env = backend_env(
        url, PORT=str(port), BIND_HOST="127.0.0.1", LOG_LEVEL="INFO", WEB_CONCURRENCY="1", GUNICORN_GRACEFUL_TIMEOUT="2"
    )
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    proc = subprocess.Popen(
        ["/bin/sh", str(ENTRYPOINT)], env=env, cwd="/", stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    return proc, f"http://127.0.0.1:{port}"


def _ready(proc: subprocess.Popen, url: str, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read()
        try:
            status = requests.get(url + "/readyz", timeout=2).status_code
            if status == 200:
                return status
        except requests.RequestException:
            pass
        time.sleep(0.05)
    return -1


@pytest.mark.slow
def test_the_image_start_command_serves_readyz_on_a_fresh_database(fresh_database):
    """Two instances start at once on an empty database (as App Runner does): the advisory lock lets one
    migrate while the other waits, and both answer 200 on /readyz."""
    procs = [_start(fresh_database) for _ in range(2)]
    outputs = []
    try:
        for proc, url in procs:
            assert _ready(proc, url) == 200
    finally:
        for proc, _ in procs:  # both stop at once (each takes its graceful moment)
            proc.terminate()
        for proc, _ in procs:
            try:
                outputs.append(proc.communicate(timeout=30)[0])
            except subprocess.TimeoutExpired:
                proc.kill()
                outputs.append(proc.communicate()[0])
    applied = [re.search(r"migrations applied: (\d+)", out) for out in outputs]
    assert all(applied), outputs
    counts = sorted(int(m[1]) for m in applied)
    assert counts[0] == 0 and counts[1] > 0  # exactly one instance migrated
    # gunicorn was exec'd (no shell left as the parent): it logged its own start, and stopped on SIGTERM
    assert all("Starting gunicorn" in out for out in outputs)


@pytest.mark.slow
def test_a_config_error_stops_before_gunicorn(fresh_database):
    env = backend_env(fresh_database, NODE_ENV="production")  # production without its secrets
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    done = subprocess.run(["/bin/sh", str(ENTRYPOINT)], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "mv-os: config error:" in done.stderr
    assert "Starting gunicorn" not in done.stdout + done.stderr
