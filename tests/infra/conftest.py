"""Infrastructure fixtures: moto (CloudFormation, IAM, ECR, STS, CloudWatch Logs) with throwaway credentials, a
boto3-like session that hands out moto clients or Stubber'd ones, and an instant clock."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from scripts.infra.template import TEMPLATES, load

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
SHARED_RESOURCES = len(load(TEMPLATES / "shared.yaml")["Resources"])
ENVIRONMENT_RESOURCES = len(load(TEMPLATES / "environment.yaml")["Resources"])
IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/mv-os-backend@sha256:" + "ab" * 32


@pytest.fixture
def aws(monkeypatch):
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",  # pragma: allowlist secret (moto's dummy key)
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    with mock_aws():
        yield


class Session:
    """What scripts.infra.cli needs of a boto3 session: `client(name)`.  Clients named in `stubbed` are the
    given (Stubber-wrapped) ones; the rest are moto's."""

    def __init__(self, **stubbed):
        self.stubbed = stubbed

    def client(self, name: str, **_):
        return self.stubbed.get(name) or boto3.client(name, region_name=REGION)


def on_ecs_express(tmp_path, env: str = "staging"):
    """A copy of env/environments.toml in which only `env`'s `target` line says ecs-express."""
    from scripts.release.environments import DEFAULT_PATH

    text = DEFAULT_PATH.read_text()
    start = text.index(f"[environments.{env}]\n")
    at = text.index('target = "apprunner"', start)
    path = tmp_path / "environments.toml"
    path.write_text(text[:at] + 'target = "ecs-express"' + text[at + len('target = "apprunner"') :])
    return path
