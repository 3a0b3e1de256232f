"""The ECS Express Mode IAM documents in infra/ecs-express (deploy-ecs-<env> for each deploy role, ecs-execution-<env>
for the tasks), evaluated like tests/release/test_iam.py and derived from the cluster, roles and service names in
env/environments.toml, so the policies follow the definition file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.release.test_iam import ACC, ENVS, PRODUCTION_SECRETS, REGION, STAGING_SECRETS, allowed

DOCS = Path(__file__).resolve().parents[2] / "infra" / "ecs-express"

OTHER = {"staging": "production", "production": "staging"}


def doc(name: str) -> dict:
    return json.loads((DOCS / name).read_text())


def ecs(env: str) -> dict[str, str]:
    return ENVS[env].targets["ecs-express"]


def service(env: str) -> str:
    return f"arn:aws:ecs:{REGION}:{ACC}:service/{ecs(env)['cluster']}/{ENVS[env].service}"


def role(name: str) -> str:
    return f"arn:aws:iam::{ACC}:role/{name}"


@pytest.mark.parametrize("env", ["staging", "production"])
def test_each_deploy_role_follows_and_updates_only_its_own_express_service(env):
    policy = doc(f"deploy-ecs-{env}.policy.json")
    own, other = service(env), service(OTHER[env])
    for action in (
        "ecs:DescribeServices",
        "ecs:DescribeExpressGatewayService",
        "ecs:ListServiceDeployments",
        "ecs:UpdateExpressGatewayService",
        "ecs:UpdateService",
    ):
        assert allowed(policy, action, own), action
        assert not allowed(policy, action, other), action
    assert not allowed(policy, "ecs:DeleteExpressGatewayService", own), "a deploy never deletes the service"
    assert not allowed(policy, "ecs:CreateExpressGatewayService", own), "the service comes from infra, not a deploy"


@pytest.mark.parametrize("env", ["staging", "production"])
def test_each_deploy_role_passes_only_its_own_task_roles_to_ecs_tasks(env):
    policy = doc(f"deploy-ecs-{env}.policy.json")
    tasks = {"iam:PassedToService": "ecs-tasks.amazonaws.com"}
    for key in ("execution_role", "task_role"):
        assert allowed(policy, "iam:PassRole", role(ecs(env)[key]), tasks)
        assert not allowed(policy, "iam:PassRole", role(ecs(env)[key]), {"iam:PassedToService": "ec2.amazonaws.com"})
        assert not allowed(policy, "iam:PassRole", role(ecs(OTHER[env])[key]), tasks)
    assert not allowed(policy, "iam:PassRole", role(ecs(env)["infrastructure_role"]), tasks)


def test_each_execution_role_reads_only_its_own_environments_secret_values():
    staging, production = doc("ecs-execution-staging.policy.json"), doc("ecs-execution-production.policy.json")
    for arn in STAGING_SECRETS:
        assert allowed(staging, "secretsmanager:GetSecretValue", arn)
        assert not allowed(production, "secretsmanager:GetSecretValue", arn)
    for arn in PRODUCTION_SECRETS:
        assert allowed(production, "secretsmanager:GetSecretValue", arn)
        assert not allowed(staging, "secretsmanager:GetSecretValue", arn)


@pytest.mark.parametrize("env", ["staging", "production"])
def test_the_deploy_role_reads_the_log_group_the_service_writes(env):
    group = f"arn:aws:logs:{REGION}:{ACC}:log-group:/aws/ecs/{ecs(env)['cluster']}/{ENVS[env].service}:*"
    assert allowed(doc(f"deploy-ecs-{env}.policy.json"), "logs:FilterLogEvents", group)
    assert allowed(doc(f"ecs-execution-{env}.policy.json"), "logs:PutLogEvents", group)
    other = group.replace(ecs(env)["cluster"], ecs(OTHER[env])["cluster"])
    assert not allowed(doc(f"deploy-ecs-{env}.policy.json"), "logs:FilterLogEvents", other)
