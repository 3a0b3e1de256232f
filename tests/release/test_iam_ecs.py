"""The ECS Express Mode part of the IAM documents in infra/iam (rendered from infra/cloudformation/shared.yaml): the
deploy roles' statements for their Express service and ecs-execution-<env> for the tasks, evaluated like
tests/release/test_iam.py with every ARN derived from the cluster, roles and service names in
env/environments.toml, so the policies follow the definition file."""

from __future__ import annotations

import pytest

from tests.release.test_iam import ACC, ENVS, PRODUCTION_SECRETS, REGION, STAGING_SECRETS, allowed, doc

OTHER = {"staging": "production", "production": "staging"}


def ecs(env: str) -> dict[str, str]:
    return ENVS[env].targets["ecs-express"]


def service(env: str) -> str:
    return f"arn:aws:ecs:{REGION}:{ACC}:service/{ecs(env)['cluster']}/{ENVS[env].service}"


def role(name: str) -> str:
    return f"arn:aws:iam::{ACC}:role/{name}"


@pytest.mark.parametrize("env", ["staging", "production"])
def test_each_deploy_role_follows_and_updates_only_its_own_express_service(env):
    policy = doc(f"deploy-{env}.policy.json")
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


def test_the_recorder_sees_what_staging_runs_on_either_target_and_changes_nothing():
    """`nox -s record -- staging` describes the service it records, on App Runner or on ECS Express Mode."""
    policy = doc("record-staging.policy.json")
    for action in ("ecs:DescribeServices", "ecs:DescribeExpressGatewayService", "ecs:ListServiceDeployments"):
        assert allowed(policy, action, service("staging")), action
        assert not allowed(policy, action, service("production")), action
    for action in ("ecs:UpdateExpressGatewayService", "ecs:UpdateService", "ecs:DeleteExpressGatewayService"):
        assert not allowed(policy, action, service("staging")), action


@pytest.mark.parametrize("env", ["staging", "production"])
def test_each_deploy_role_passes_only_its_own_task_roles_to_ecs_tasks(env):
    policy = doc(f"deploy-{env}.policy.json")
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
    assert allowed(doc(f"deploy-{env}.policy.json"), "logs:FilterLogEvents", group)
    assert allowed(doc(f"ecs-execution-{env}.policy.json"), "logs:PutLogEvents", group)
    other = group.replace(ecs(env)["cluster"], ecs(OTHER[env])["cluster"])
    assert not allowed(doc(f"deploy-{env}.policy.json"), "logs:FilterLogEvents", other)


def test_the_production_plan_role_and_the_audit_read_express_services_and_change_nothing():
    plan, audit = doc("plan-production.policy.json"), doc("audit.policy.json")
    for action in ("ecs:DescribeServices", "ecs:DescribeExpressGatewayService", "ecs:ListServiceDeployments"):
        assert allowed(plan, action, service("production")), action
        assert not allowed(plan, action, service("staging")), action
        for env in ("staging", "production"):
            assert allowed(audit, action, service(env)), action
    for action in ("ecs:UpdateExpressGatewayService", "ecs:UpdateService"):
        for env in ("staging", "production"):
            assert not allowed(plan, action, service(env)), action
            assert not allowed(audit, action, service(env)), action


def test_the_roles_environments_toml_names_are_the_shared_stacks():
    """The deploy sends these names; the shared stack creates them: one spelling, or ECS refuses the deploy."""
    for env in ("staging", "production"):
        for key in ("execution_role", "task_role", "infrastructure_role"):
            trust = doc(f"{ecs(env)[key].removeprefix('mv-os-')}.trust.json")
            principal = trust["Statement"][0]["Principal"]["Service"]
            assert principal == ("ecs.amazonaws.com" if key == "infrastructure_role" else "ecs-tasks.amazonaws.com")


def test_the_task_roles_grant_nothing_and_the_infrastructure_role_is_aws_managed():
    from scripts.infra.template import TEMPLATES, load

    roles = {
        r["Properties"]["RoleName"]: r["Properties"]
        for r in load(TEMPLATES / "shared.yaml")["Resources"].values()
        if r["Type"] == "AWS::IAM::Role"
    }
    for env in ("staging", "production"):
        task = roles[ecs(env)["task_role"]]
        assert "Policies" not in task and "ManagedPolicyArns" not in task
    infra = roles[ecs("staging")["infrastructure_role"]]
    assert "Policies" not in infra
    managed = "arn:${AWS::Partition}:iam::aws:policy/service-role/AmazonECSInfrastructureRoleforExpressGatewayServices"
    assert infra["ManagedPolicyArns"] == [{"Fn::Sub": managed}]
