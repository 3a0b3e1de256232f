"""The offline rehearsal: `python -m scripts.infra` (what `nox -s infra` runs) in its own process, talking HTTP to
a moto server on 127.0.0.1 through the SDK's standard AWS_ENDPOINT_URL, as docs/aws-setup.md shows.  The shared
stack is planned, applied and planned again (nothing left to do); both environment stacks are planned."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from moto.server import ThreadedMotoServer

from tests.infra.conftest import ENVIRONMENT_RESOURCES, IMAGE, SHARED_RESOURCES, on_ecs_express

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def endpoint():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def infra(endpoint: str, *args: str) -> subprocess.CompletedProcess:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": os.pathsep.join([str(ROOT / "backend"), str(ROOT)]),
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",  # pragma: allowlist secret (moto's dummy key)
        "AWS_EC2_METADATA_DISABLED": "true",
        "GITHUB_REPOSITORY": "acme/mv-os",
    }
    return subprocess.run(
        [sys.executable, "-m", "scripts.infra", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_shared_stack_plan_apply_and_nothing_left_to_do(endpoint):
    planned = infra(endpoint, "plan", "shared", "--name", "plan-1")
    assert planned.returncode == 0, planned.stdout + planned.stderr
    assert f"{SHARED_RESOURCES} to create, 0 to change, 0 to replace, 0 to delete" in planned.stdout
    assert planned.stdout.rstrip().endswith("apply with: nox -s infra -- apply shared plan-1")
    applied = infra(endpoint, "apply", "shared", "plan-1")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "mv-os-shared: CREATE_COMPLETE\napplied plan-1" in applied.stdout
    again = infra(endpoint, "plan", "shared", "--name", "plan-2")
    assert again.stdout.strip() == "no changes: mv-os-shared already matches the template and env/environments.toml"


@pytest.mark.parametrize("env", ["staging", "production"])
def test_each_environment_plans_its_change_set(endpoint, env):
    planned = infra(endpoint, "plan", env, "--image", IMAGE, "--name", "plan-1")
    assert planned.returncode == 0, planned.stdout + planned.stderr
    lines = planned.stdout.splitlines()
    assert f"stack mv-os-{env} (new stack): change set plan-1" in lines
    assert f"  {ENVIRONMENT_RESOURCES} to create, 0 to change, 0 to replace, 0 to delete" in lines
    # A plan is all it is: applying it is refused while a variable still holds a placeholder.
    refused = infra(endpoint, "apply", env, "plan-1")
    assert refused.returncode == 1
    assert refused.stdout.splitlines()[-1] == (
        f"apply {env}: VarWhatsappPhoneNumberId still hold a placeholder: fill them in env/environments.toml and "
        "plan again"
    )


def test_staging_on_ecs_express_plans_its_change_set(endpoint, tmp_path):
    """The only change is staging's `target` line: the plan is made and sends the ECS Express parameters."""
    toml = on_ecs_express(tmp_path)
    planned = infra(endpoint, "plan", "staging", "--image", IMAGE, "--name", "plan-1", "--environments", str(toml))
    assert planned.returncode == 0, planned.stdout + planned.stderr
    lines = planned.stdout.splitlines()
    assert "stack mv-os-staging (new stack): change set plan-1" in lines
    assert any(line.split()[:3] == ["create", "ExpressService", "AWS::ECS::ExpressGatewayService"] for line in lines)
    assert lines[-1] == "apply with: nox -s infra -- apply staging plan-1"
