"""The replay CLI (`python -m scripts.webhooks.replay`) against a live gunicorn, and its production guard."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from mv_os.meta.signing import meta_json
from scripts.webhooks import replay
from tests.support.databases import rows, scalar, truncate_all, wait_processed
from tests.support.servers import ROOT, LiveServer, backend_env
from tests.support.webhooks import FIXTURES, signature

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def live_server(migrated_url):
    """One gunicorn for the module (the shared fixture starts one per test); emptied after each test.  One
    gunicorn worker: the replay CLI posts one fixture at a time."""
    server = LiveServer(backend_env(migrated_url, WEB_CONCURRENCY="1")).start()
    yield server
    server.kill()


@pytest.fixture(autouse=True)
def _empty_tables(migrated_url):
    yield
    truncate_all(migrated_url)


def run_replay(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "scripts.webhooks.replay", *args],
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_replaying_every_fixture_against_gunicorn_stores_them(live_server, migrated_url):
    result = run_replay("--url", live_server.url + "/webhooks/whatsapp")
    assert result.returncode == 0, result.stdout + result.stderr
    fixtures = sorted(FIXTURES.glob("*.json"))
    lines = [line for line in result.stdout.splitlines() if line.startswith("200 ok")]
    assert len(lines) == len(fixtures) >= 16
    summary = re.search(r"(\d+)/(\d+) answered 200 in ([\d.]+)s \(([\d.]+) fixtures/s\)", result.stdout)
    assert summary and summary.group(1) == summary.group(2) == str(len(fixtures))
    print(f"\nreplay throughput: {summary.group(4)} fixtures/s ({summary.group(2)} in {summary.group(3)}s)")

    url = migrated_url
    wait_processed(url)
    assert scalar(url, "SELECT count(*) FROM webhook_payloads") == len(fixtures)
    assert scalar(url, "SELECT count(*) FROM messages WHERE direction = 'in'") == 12
    assert scalar(url, "SELECT count(*) FROM webhook_events WHERE kind = 'error'") == 1
    assert rows(url, "SELECT status FROM message_status_events WHERE status = 'failed'") == [("failed",)]

    again = run_replay("--url", live_server.url + "/webhooks/whatsapp", "inbound_text.json")
    assert again.returncode == 0
    wait_processed(url)
    assert scalar(url, "SELECT count(*) FROM messages WHERE direction = 'in'") == 12  # replay is idempotent


def test_wrong_secret_makes_the_run_fail(live_server, tmp_path):
    env_file = tmp_path / "backend.env"
    # pragma: allowlist nextline secret (test value)
    env_file.write_text("NODE_ENV=local\nWHATSAPP_APP_SECRET=not-the-servers-secret\n")
    result = run_replay(
        "--url",
        live_server.url + "/webhooks/whatsapp",
        "--env-file",
        str(env_file),
        "inbound_text.json",
        "errors_only.json",
    )
    assert result.returncode == 1
    assert result.stdout.count("403 FAIL") == 2


def test_unreachable_url_fails():
    result = run_replay("--url", "http://127.0.0.1:9/webhooks/whatsapp", "--timeout", "2", "inbound_text.json")
    assert result.returncode == 1
    assert "ERR FAIL inbound_text.json" in result.stdout


@pytest.fixture
def production_env(tmp_path):
    env_file = tmp_path / "backend.env.production"
    # pragma: allowlist nextline secret (test value)
    env_file.write_text("NODE_ENV=production\nWHATSAPP_APP_SECRET=prod-secret-value-for-test\n")
    return env_file


def test_production_is_refused_without_the_flag(httpserver, production_env):
    result = run_replay("--url", httpserver.url_for("/webhooks/whatsapp"), "--env-file", str(production_env))
    assert result.returncode == 2
    assert "production" in result.stderr
    assert httpserver.log == []


def test_production_with_the_flag_still_needs_the_typed_confirmation(httpserver, production_env):
    url = httpserver.url_for("/webhooks/whatsapp")
    refused = run_replay("--url", url, "--env-file", str(production_env), "--production", stdin="yes\n")
    assert refused.returncode == 2
    assert httpserver.log == []

    body = (FIXTURES / "dashboard_test_sample.json").read_bytes()
    httpserver.expect_oneshot_request(
        "/webhooks/whatsapp",
        method="POST",
        data=body,
        headers={"X-Hub-Signature-256": signature(body, "prod-secret-value-for-test")},
    ).respond_with_json({"status": "ok"})
    confirmed = run_replay(
        "--url",
        url,
        "--env-file",
        str(production_env),
        "--production",
        "dashboard_test_sample.json",
        stdin="production\n",
    )
    assert confirmed.returncode == 0, confirmed.stdout + confirmed.stderr
    httpserver.check_assertions()


def test_template_placeholders_are_refused(httpserver):
    result = run_replay("--url", httpserver.url_for("/x"), "--env-file", str(ROOT / "env/backend.env.staging.example"))
    assert result.returncode == 2
    assert "placeholder" in result.stderr
    assert httpserver.log == []


def test_env_file_parser_reads_the_local_template():
    values = replay.read_env_file(ROOT / "env" / "backend.env.local.example")
    assert values["WHATSAPP_APP_SECRET"] == "local-app-secret"
    assert values["NODE_ENV"] == "local"


# The issue's list of cases, each with at least one fixture.
REQUIRED_FIXTURES = [
    "inbound_text.json",
    "inbound_image_with_url.json",
    "inbound_image_without_url.json",
    "inbound_reaction.json",
    "inbound_unknown_type.json",
    "inbound_user_id_only.json",
    "status_1_sent.json",
    "status_2_delivered.json",
    "status_3_read.json",
    "status_4_failed.json",
    "status_out_of_order_1_read.json",
    "status_out_of_order_2_delivered.json",
    "batch_multi_entry.json",
    "errors_only.json",
    "dashboard_test_sample.json",
]


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.json")))
def test_fixtures_are_bytes_as_meta_sends_them(name):
    """Compact, ASCII only (non-ASCII as \\uXXXX), '/' as '\\/', no trailing newline: an editor or hook that
    "fixes" a fixture changes its bytes and therefore its signature."""
    body = (FIXTURES / name).read_bytes()
    assert body == meta_json(json.loads(body))
    assert not body.endswith(b"\n")


def test_every_case_of_the_issue_has_a_fixture():
    assert sorted(REQUIRED_FIXTURES) == sorted(set(REQUIRED_FIXTURES) & {p.name for p in FIXTURES.glob("*.json")})
    failed = json.loads((FIXTURES / "status_4_failed.json").read_bytes())
    assert failed["entry"][0]["changes"][0]["value"]["statuses"][0]["errors"][0]["code"] == 131047
    user_only = json.loads((FIXTURES / "inbound_user_id_only.json").read_bytes())
    contact = user_only["entry"][0]["changes"][0]["value"]["contacts"][0]
    assert "user_id" in contact and "wa_id" not in contact
    batch = json.loads((FIXTURES / "batch_multi_entry.json").read_bytes())
    assert len(batch["entry"]) >= 2
    assert sum(len(c["value"].get("messages", [])) for e in batch["entry"] for c in e["changes"]) >= 4
