"""The commands a new developer types, run as they type them: `python3 -m nox -s dev|serve|manage`.

Each test starts nox itself (the interpreter that runs this suite's nox, never a `nox` found on PATH) in a
session of its own, the way a terminal does, and stops it with SIGTERM to that process group."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.support.databases import truncate_all
from tests.support.servers import (
    ROOT,
    TEST_PASSWORD_HASH_METHOD,
    LiveServer,
    backend_env,
    free_port,
    wait_answering,
)

pytestmark = pytest.mark.slow
NOX = [os.environ.get("MV_OS_NOX_PYTHON") or sys.executable, "-m", "nox", "-f", str(ROOT / "noxfile.py")]
VERIFY_TOKEN = "local-verify-token"  # the local template's value


def shell_env(**extra: str) -> dict[str, str]:
    """A developer's shell: none of the suite's own database or app variables."""
    drop = ("DATABASE_URL", "TEST_DATABASE_URL", "PUBLIC_BASE_URL", "PORT", "NODE_ENV", "PYTHONPATH", "VIRTUAL_ENV")
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith(("WHATSAPP_", "JWT_", "XDG_"))}
    env["PASSWORD_HASH_METHOD"] = TEST_PASSWORD_HASH_METHOD  # the demo user's hash: cheap scrypt (local only)
    env.update(extra)
    return env


class Terminal:
    """A command running in its own session, its output in a file, stopped like Ctrl-C or a closing terminal."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path):
        self.log = log
        with open(log, "w") as out:
            self.proc = subprocess.Popen(
                args, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_healthy(self, url: str, timeout: float = 120) -> None:
        wait_answering(url, lambda: None if self.proc.poll() is None else self.output(), timeout)

    def terminate_group(self) -> None:
        if self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def processes_left(session_id: int, marker: str) -> list[str]:
    """Processes still in the command's session, or whose command line names `marker` (the state folder)."""
    left = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            sid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[3])
        except (OSError, IndexError, ValueError):
            continue
        if cmdline and (sid == session_id or marker in cmdline):
            left.append(f"{proc.name}: {cmdline[:200]}")
    return left


def wait_until_gone(session_id: int, marker: str, timeout: float = 60) -> list[str]:
    deadline = time.monotonic() + timeout
    while (left := processes_left(session_id, marker)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def test_nox_dev_on_a_chosen_port_delivers_read_receipts_and_leaves_nothing_running(tmp_path, state_dir):
    """PORT from the shell: served there, the mock's status webhooks come back there, the replay CLI finds it;
    the handshake's token never reaches the log; SIGTERM to the group stops the embedded PostgreSQL too."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    state = state_dir
    env = shell_env(PORT=str(port), MV_OS_STATE_DIR=str(state))
    term = Terminal([*NOX, "-s", "dev", "--", "--no-reload"], env, tmp_path / "dev.log")
    try:
        term.wait_healthy(url)
        replay = subprocess.run(
            [sys.executable, "-m", "scripts.webhooks.replay", "inbound_text.json"],
            cwd=ROOT,
            env={**env, "PYTHONPATH": os.pathsep.join([str(ROOT / "backend"), str(ROOT)])},  # as `nox -s replay`
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert replay.returncode == 0, replay.stdout + replay.stderr
        handshake = requests.get(
            url + "/webhooks/whatsapp",
            params={"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "4242"},
            timeout=5,
        )
        assert handshake.text == "4242"
        login = {"email": "demo@mv-os.local", "password": "demo-password"}
        token = requests.post(url + "/api/auth/login", json=login, timeout=10).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        conversations = wait_for(
            lambda: requests.get(url + "/api/conversations", headers=auth, timeout=5).json()["items"]
        )
        messages_url = f"{url}/api/conversations/{conversations[0]['id']}/messages"
        sent = requests.post(messages_url, json={"text": "hello from the quickstart"}, headers=auth, timeout=10)
        assert sent.status_code == 201, sent.text

        def read_receipt() -> bool:
            items = requests.get(messages_url, headers=auth, timeout=5).json()["items"]
            return any(m["id"] == sent.json()["id"] and m["status"] == "read" for m in items)

        assert wait_for(read_receipt), f"the message never reached 'read':\n{term.output()[-3000:]}"
    finally:
        term.terminate_group()
    left = wait_until_gone(term.proc.pid, str(state))
    output = term.output()
    assert left == [], f"still running after SIGTERM to the group: {left}"
    assert f"http://127.0.0.1:{port}" in output
    assert "GET /webhooks/whatsapp?" in output, "the dev server's request log goes through the app's logging"
    assert VERIFY_TOKEN not in output
    assert "hub.verify_token=***" in output
    assert "XDG_RUNTIME_DIR" not in output and "Traceback" not in output


def wait_for(condition, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := condition():
            return result
        time.sleep(0.1)
    return None


def test_nox_serve_listens_on_the_port_from_the_shell(tmp_path, migrated_url):
    port = free_port()
    env = shell_env(PORT=str(port), DATABASE_URL=migrated_url, WEB_CONCURRENCY="1")
    term = Terminal([*NOX, "-s", "serve"], env, tmp_path / "serve.log")
    try:
        term.wait_healthy(f"http://127.0.0.1:{port}")
    finally:
        term.terminate_group()
        truncate_all(migrated_url)
    assert wait_until_gone(term.proc.pid, str(tmp_path)) == []
    assert f"Listening at: http://127.0.0.1:{port}" in term.output()


def _closed_port_url() -> str:
    return f"postgresql://mvos:{'pw-' + 'never-printed'}@127.0.0.1:{free_port()}/mv_os"


@pytest.mark.parametrize("module", ["mv_os.devserver", "mv_os.manage"])
def test_an_unreachable_database_url_is_one_line_naming_where_and_the_fix(module):
    url = _closed_port_url()
    args = ["--no-reload"] if module == "mv_os.devserver" else ["migrate"]
    result = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env={**shell_env(DATABASE_URL=url), "PYTHONPATH": str(ROOT / "backend")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    port = url.rsplit(":", 1)[1].split("/")[0]
    assert result.returncode == 1
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert f"127.0.0.1:{port}" in lines[0] and "DATABASE_URL" in lines[0]
    assert "docker compose up -d" in lines[0] and "unset DATABASE_URL" in lines[0]
    assert "never-printed" not in lines[0]


def documented_manage_commands() -> list[str]:
    """Every `nox -s manage -- …` command written in the README and docs/."""
    found = set()
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        found.update(m.strip() for m in re.findall(r"nox -s manage -- ([^`\n|]+)`", doc.read_text()))
    return sorted(found)


def test_the_docs_name_the_operator_commands():
    commands = documented_manage_commands()
    assert {c.split()[0] for c in commands} >= {"migrate", "create-user", "webhooks"}, commands


@pytest.mark.parametrize("command", documented_manage_commands())
def test_each_documented_manage_command_runs(command, migrated_url):
    args = command.replace("you@example.com", f"ops-{free_port()}@example.com").split()
    result = subprocess.run(
        [sys.executable, "-m", "mv_os.manage", *args],
        cwd=ROOT,
        env={
            # pragma: allowlist nextline secret (test value)
            **shell_env(DATABASE_URL=migrated_url, MV_OS_NEW_USER_PASSWORD="a-long-operator-password"),
            "PYTHONPATH": str(ROOT / "backend"),
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    truncate_all(migrated_url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_gunicorn_opens_no_control_socket_in_the_home_folder(tmp_path, migrated_url):
    home = tmp_path / "home"
    home.mkdir()
    server = LiveServer(backend_env(migrated_url, WEB_CONCURRENCY="1", HOME=str(home))).start()
    server.kill()
    assert list(home.iterdir()) == []


def _sh_blocks(text: str) -> list[list[str]]:
    return [
        [line for line in block.splitlines() if line.strip()] for block in re.findall(r"```sh\n(.*?)```", text, re.S)
    ]


def test_the_quickstart_is_two_lines_that_need_nothing_on_path_and_the_path_fix_follows():
    readme = (ROOT / "README.md").read_text()
    quickstart = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    first, second = _sh_blocks(quickstart)[:2]
    assert len(first) == 2
    commands = [part.strip() for line in first for part in line.split("#", 1)[0].split("&&")]
    assert commands[0].startswith('python3 -m pip install --user "nox[uv]==')
    assert all(c.startswith("python3 -m nox -s ") for c in commands[1:]), commands
    assert second == ['export PATH="$(python3 -m site --user-base)/bin:$PATH"']


def test_every_nox_session_the_docs_name_exists():
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    named = sorted({name for doc in docs for name in re.findall(r"nox -s ([a-z][a-z0-9-]*)", doc.read_text())})
    assert {"dev", "tests", "manage", "lock"} <= set(named)
    # nox itself answers: `-l -s NAME…` fails with "Sessions not found" for a name the noxfile lacks.
    listed = subprocess.run(
        [*NOX, "-l", "--json", "-s", *named], capture_output=True, text=True, cwd=ROOT, timeout=60, check=False
    )
    assert listed.returncode == 0, listed.stderr
    assert {s["name"] for s in json.loads(listed.stdout)} == set(named)
