"""The IAM documents in infra/iam, evaluated with a small IAM-like evaluator (explicit Deny wins, else an Allow
must match action and resource; `*` and `?` wildcards): the staging role cannot touch production secrets, the
production role cannot touch staging secrets, and each GitHub OIDC trust admits only its own environment."""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path

import pytest

from scripts.release.environments import load

IAM = Path(__file__).resolve().parents[2] / "infra" / "iam"
ACC, REGION = "ACCOUNT_ID", "us-east-1"


def doc(name: str) -> dict:
    return json.loads((IAM / name).read_text())


def _list(value) -> list[str]:
    return value if isinstance(value, list) else [value]


def allowed(policy: dict, action: str, resource: str) -> bool:
    def matches(stmt):
        return any(fnmatch.fnmatchcase(action, a) for a in _list(stmt["Action"])) and any(
            fnmatch.fnmatchcase(resource, r) for r in _list(stmt["Resource"])
        )

    if any(s["Effect"] == "Deny" and matches(s) for s in policy["Statement"]):
        return False
    return any(s["Effect"] == "Allow" and matches(s) for s in policy["Statement"])


def secret(name: str) -> str:
    return f"arn:aws:secretsmanager:{REGION}:{ACC}:secret:{name}-Ab12Cd"


ENVS = load()
STAGING_SECRETS = [secret(n) for n in ENVS["staging"].secrets.values()]
PRODUCTION_SECRETS = [secret(n) for n in ENVS["production"].secrets.values()]


@pytest.mark.parametrize("action", ["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"])
def test_staging_roles_cannot_touch_production_secrets(action):
    for name in ("deploy-staging.policy.json", "apprunner-instance-staging.policy.json"):
        for arn in PRODUCTION_SECRETS:
            assert not allowed(doc(name), action, arn), (name, arn)


@pytest.mark.parametrize("action", ["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"])
def test_production_roles_cannot_touch_staging_secrets(action):
    for name in ("deploy-production.policy.json", "apprunner-instance-production.policy.json"):
        for arn in STAGING_SECRETS:
            assert not allowed(doc(name), action, arn), (name, arn)


def test_each_role_reaches_exactly_what_it_needs():
    for arn in STAGING_SECRETS:
        assert allowed(doc("deploy-staging.policy.json"), "secretsmanager:DescribeSecret", arn)
        assert allowed(doc("apprunner-instance-staging.policy.json"), "secretsmanager:GetSecretValue", arn)
    for arn in PRODUCTION_SECRETS:
        assert allowed(doc("deploy-production.policy.json"), "secretsmanager:DescribeSecret", arn)
        assert allowed(doc("apprunner-instance-production.policy.json"), "secretsmanager:GetSecretValue", arn)


def test_deploy_roles_never_read_secret_values():
    for env in ("staging", "production"):
        for arn in STAGING_SECRETS + PRODUCTION_SECRETS:
            assert not allowed(doc(f"deploy-{env}.policy.json"), "secretsmanager:GetSecretValue", arn)


def test_an_unlisted_production_looking_secret_is_not_readable():
    """Production's allow-list names its five secrets; a new `mv-os/...` secret needs an explicit entry."""
    assert not allowed(doc("deploy-production.policy.json"), "secretsmanager:DescribeSecret", secret("mv-os/other"))


def test_each_deploy_role_updates_only_its_own_service():
    staging_svc = f"arn:aws:apprunner:{REGION}:{ACC}:service/mv-os-backend-staging/0123"
    production_svc = f"arn:aws:apprunner:{REGION}:{ACC}:service/mv-os-backend/0123"
    for action in ("apprunner:UpdateService", "apprunner:StartDeployment", "apprunner:ListOperations"):
        assert allowed(doc("deploy-staging.policy.json"), action, staging_svc)
        assert not allowed(doc("deploy-staging.policy.json"), action, production_svc)
        assert allowed(doc("deploy-production.policy.json"), action, production_svc)
        assert not allowed(doc("deploy-production.policy.json"), action, staging_svc)


def test_production_never_pushes_images_or_records():
    repo = f"arn:aws:ecr:{REGION}:{ACC}:repository/mv-os-backend"
    assert not allowed(doc("deploy-production.policy.json"), "ecr:PutImage", repo)
    assert allowed(doc("deploy-production.policy.json"), "ecr:DescribeImages", repo)
    assert allowed(doc("deploy-staging.policy.json"), "ecr:PutImage", repo)


@pytest.mark.parametrize("env", ["staging", "production"])
def test_oidc_trust_admits_only_its_github_environment(env):
    (stmt,) = doc(f"deploy-{env}.trust.json")["Statement"]
    assert stmt["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert stmt["Principal"]["Federated"].endswith(":oidc-provider/token.actions.githubusercontent.com")
    equals = stmt["Condition"]["StringEquals"]
    assert equals["token.actions.githubusercontent.com:aud"] == "sts.amazonaws.com"
    assert equals["token.actions.githubusercontent.com:sub"] == f"repo:GITHUB_OWNER/mv-os:environment:{env}"
    assert "StringLike" not in stmt["Condition"]  # no wildcard subject that a feature branch could match


def test_the_production_plan_role_reads_everything_the_gate_needs_and_changes_nothing():
    plan = doc("plan-production.policy.json")
    svc = f"arn:aws:apprunner:{REGION}:{ACC}:service/mv-os-backend/0123abcd"
    repo = f"arn:aws:ecr:{REGION}:{ACC}:repository/mv-os-backend"
    for action in ("apprunner:DescribeService", "apprunner:ListOperations"):
        assert allowed(plan, action, svc)
    assert allowed(plan, "ecr:DescribeImages", repo)
    for arn in PRODUCTION_SECRETS:
        assert allowed(plan, "secretsmanager:DescribeSecret", arn)
        assert not allowed(plan, "secretsmanager:GetSecretValue", arn)
    for arn in STAGING_SECRETS:
        assert not allowed(plan, "secretsmanager:DescribeSecret", arn)
    for action in ("apprunner:UpdateService", "apprunner:StartDeployment"):
        assert not allowed(plan, action, svc)
    assert not allowed(plan, "ecr:PutImage", repo)
    assert not allowed(plan, "iam:PassRole", f"arn:aws:iam::{ACC}:role/mv-os-apprunner-instance-production")


def test_the_production_plan_trust_admits_only_the_production_plan_environment():
    (stmt,) = doc("plan-production.trust.json")["Statement"]
    equals = stmt["Condition"]["StringEquals"]
    assert equals["token.actions.githubusercontent.com:sub"] == "repo:GITHUB_OWNER/mv-os:environment:production-plan"
    assert "StringLike" not in stmt["Condition"]
