"""IAM has one source, infra/cloudformation/shared.yaml: infra/iam/*.json is rendered from it and must agree.
The roles' contents: each deploy role allows exactly what the release engine calls (found by reading the
engine's code against botocore's service models), and no role of one environment reaches the other's
resources.  Policies are evaluated with tests/release/test_iam.py's evaluator (explicit Deny wins)."""

from __future__ import annotations

import ast
import re
import shutil
from pathlib import Path

import botocore.session
import pytest
from botocore import xform_name

from scripts.infra import iam
from tests.release.test_iam import allowed

ROOT = Path(__file__).resolve().parents[2]
DOCS = iam.documents()
ACC, REGION = "ACCOUNT_ID", "us-east-1"
# The services the engine talks to; an operation found in its code is mapped to `<service>:<Operation>`.
ENGINE_SERVICES = ("apprunner", "ecs", "secretsmanager", "ecr", "logs", "ssm")
# What `docker push` (docker/build-push-action, staging only) needs besides the engine's own calls; the image
# manifest itself is written with ecr:PutImage and read back with ecr:BatchGetImage.
DOCKER_PUSH = {
    "ecr:GetAuthorizationToken",
    "ecr:BatchCheckLayerAvailability",
    "ecr:InitiateLayerUpload",
    "ecr:UploadLayerPart",
    "ecr:CompleteLayerUpload",
}
# Engine calls no CI role makes: reading secret values is `audit --values`, for a person with both namespaces.
PEOPLE_ONLY = {"secretsmanager:GetSecretValue"}


def calls_in(package: str, services: tuple[str, ...], also: set[str] = frozenset()) -> set[str]:
    """`service:Operation` for every AWS operation the package's code calls (client.op(...) or _call("op")),
    found by matching method names against botocore's service models; `also` adds calls made through other code."""
    names = set(also)
    for path in (ROOT / "scripts" / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                names.add(node.func.attr)
                if node.func.attr in ("_call", "_refused") and node.args and isinstance(node.args[0], ast.Constant):
                    names.add(str(node.args[0].value))
    session = botocore.session.get_session()
    return {
        f"{service}:{operation}"
        for service in services
        for operation in session.get_service_model(service).operation_names
        if xform_name(operation) in names
    }


# Method names the scan cannot tell apart: App Runner's list_services also names ECS's ListServices, which the ECS
# adapter never calls (it finds its service with describe_services in its own cluster).
NAME_CLASHES = {"ecs:ListServices"}


def engine_calls() -> set[str]:
    return calls_in("release", ENGINE_SERVICES) - NAME_CLASHES


def allow_actions(policy: dict) -> set[str]:
    out = set()
    for stmt in policy["Statement"]:
        if stmt["Effect"] == "Allow":
            out.update([stmt["Action"]] if isinstance(stmt["Action"], str) else stmt["Action"])
    return out


def test_infra_iam_is_rendered_from_the_shared_template():
    assert iam.differences() == [], "run `nox -s infra -- iam` after changing infra/cloudformation/shared.yaml"


def test_a_hand_edit_or_a_stray_document_is_caught(tmp_path):
    copy = tmp_path / "iam"
    shutil.copytree(iam.IAM, copy)
    assert iam.differences(copy) == []
    edited = copy / "deploy-staging.policy.json"
    edited.write_text(edited.read_text().replace("apprunner:UpdateService", "apprunner:*"))
    (copy / "hand-made.policy.json").write_text("{}\n")
    (copy / "audit.trust.json").unlink()
    assert iam.differences(copy) == [
        "hand-made.policy.json: not rendered from shared.yaml (remove it)",
        "audit.trust.json: missing",
        "deploy-staging.policy.json: differs from shared.yaml",
    ]
    assert sorted(iam.render(copy)) == [
        "removed hand-made.policy.json",
        "wrote audit.trust.json",
        "wrote deploy-staging.policy.json",
    ]
    assert iam.differences(copy) == []


def test_the_engine_scan_finds_the_calls_it_makes():
    """If the scan found nothing the next tests would prove nothing."""
    calls = engine_calls()
    assert {"apprunner:UpdateService", "secretsmanager:DescribeSecret", "ssm:PutParameter"} <= calls
    assert {
        "ecs:DescribeExpressGatewayService",
        "ecs:UpdateExpressGatewayService",
        "ecs:ListServiceDeployments",
    } <= calls


ENGINE_ROLES = ("deploy-staging", "record-staging", "deploy-production", "plan-production", "audit")
# Granted although scripts/release never calls them.  Each should be dropped from shared.yaml (or called); the list
# may only shrink: a test below fails when one is called after all or no longer granted.
NOT_CALLED = {
    "ecr:DescribeImages",
    "ssm:GetParameterHistory",
    "logs:DescribeLogStreams",
    "logs:GetLogEvents",
}


def test_every_engine_call_is_granted_to_a_ci_role():
    granted = set().union(*(allow_actions(DOCS[f"{role}.policy.json"]) for role in ENGINE_ROLES))
    assert engine_calls() - PEOPLE_ONLY <= granted


@pytest.mark.parametrize("role", ENGINE_ROLES)
def test_no_ci_role_is_granted_an_operation_nothing_calls(role):
    extra = {"iam:PassRole"} | (
        DOCKER_PUSH | {"ecr:BatchGetImage", "ecr:PutImage"} if role == "deploy-staging" else set()
    )
    assert allow_actions(DOCS[f"{role}.policy.json"]) - engine_calls() - extra - NOT_CALLED == set()


def test_the_list_of_uncalled_grants_is_current():
    granted = set().union(*(allow_actions(DOCS[f"{role}.policy.json"]) for role in ENGINE_ROLES))
    assert granted >= NOT_CALLED and not NOT_CALLED & engine_calls()


def _resources(env: str) -> list[str]:
    """Every kind of thing an environment owns, as ARNs."""
    service = "mv-os-backend-staging" if env == "staging" else "mv-os-backend"
    db = "mv-os-db-staging" if env == "staging" else "mv-os-db"
    prefix = "mv-os/staging/" if env == "staging" else "mv-os/"
    secrets = ("database-url", "jwt-secret", "whatsapp-app-secret", "whatsapp-verify-token", "db-master")
    return [
        f"arn:aws:apprunner:{REGION}:{ACC}:service/{service}/0123abcd",
        f"arn:aws:apprunner:{REGION}:{ACC}:vpcconnector/{service}/1/0123abcd",
        f"arn:aws:rds:{REGION}:{ACC}:db:{db}",
        f"arn:aws:cloudformation:{REGION}:{ACC}:stack/mv-os-{env}/0123abcd",
        f"arn:aws:iam::{ACC}:role/mv-os-apprunner-instance-{env}",
        f"arn:aws:iam::{ACC}:role/mv-os-cfn-{env}",
        f"arn:aws:lambda:{REGION}:{ACC}:function:mv-os-log-retention-{env}",
        f"arn:aws:logs:{REGION}:{ACC}:log-group:/aws/apprunner/{service}/0123abcd/application",
        # The same environment on ECS Express Mode.
        f"arn:aws:ecs:{REGION}:{ACC}:cluster/mv-os-{env}",
        f"arn:aws:ecs:{REGION}:{ACC}:service/mv-os-{env}/{service}",
        f"arn:aws:ecs:{REGION}:{ACC}:service-deployment/mv-os-{env}/{service}/0123abcd",
        f"arn:aws:iam::{ACC}:role/mv-os-ecs-execution-{env}",
        f"arn:aws:iam::{ACC}:role/mv-os-ecs-task-{env}",
        f"arn:aws:logs:{REGION}:{ACC}:log-group:/aws/ecs/mv-os-{env}/{service}:*",
        *(f"arn:aws:secretsmanager:{REGION}:{ACC}:secret:{prefix}{name}-Ab12Cd" for name in secrets),
    ]


TOUCH = [
    "apprunner:DescribeService",
    "apprunner:UpdateService",
    "apprunner:StartDeployment",
    "apprunner:DeleteService",
    "apprunner:DeleteVpcConnector",
    "rds:ModifyDBInstance",
    "rds:DeleteDBInstance",
    "secretsmanager:DescribeSecret",
    "secretsmanager:GetSecretValue",
    "secretsmanager:PutSecretValue",
    "secretsmanager:DeleteSecret",
    "cloudformation:DescribeStacks",
    "cloudformation:CreateChangeSet",
    "cloudformation:ExecuteChangeSet",
    "cloudformation:DeleteStack",
    "iam:PassRole",
    "lambda:UpdateFunctionCode",
    "logs:PutRetentionPolicy",
    "logs:DeleteLogGroup",
    "logs:FilterLogEvents",
    "ecs:DescribeServices",
    "ecs:DescribeExpressGatewayService",
    "ecs:UpdateExpressGatewayService",
    "ecs:UpdateService",
    "ecs:DeleteExpressGatewayService",
    "ecs:DeleteCluster",
]


@pytest.mark.parametrize(("mine", "other"), [("staging", "production"), ("production", "staging")])
def test_no_role_of_one_environment_touches_the_other(mine, other):
    roles = [n for n in DOCS if n.endswith(f"-{mine}.policy.json")]
    assert len(roles) >= 5, roles
    for name in roles:
        for resource in _resources(other):
            for action in TOUCH:
                assert not allowed(DOCS[name], action, resource), (name, action, resource)


@pytest.mark.parametrize("env", ["staging", "production"])
def test_the_cloudformation_role_manages_its_own_environment(env):
    """The positive side of isolation: what the environment stack creates, its own role may change."""
    policy = DOCS[f"cfn-{env}.policy.json"]
    for resource in _resources(env):
        service = resource.split(":")[2]
        action = {
            "apprunner": "apprunner:UpdateService",
            "rds": "rds:ModifyDBInstance",
            "secretsmanager": "secretsmanager:PutSecretValue",  # pragma: allowlist secret (an IAM action name)
            "lambda": "lambda:UpdateFunctionCode",
            "ecs": "ecs:UpdateExpressGatewayService",
        }.get(service)
        if action:
            assert allowed(policy, action, resource), (action, resource)
    ecs_roles = [
        f"arn:aws:iam::{ACC}:role/mv-os-ecs-{kind}" for kind in (f"execution-{env}", f"task-{env}", "infrastructure")
    ]
    for role in ecs_roles:
        assert allowed(policy, "iam:PassRole", role), role
    assert allowed(
        policy, "logs:CreateLogGroup", f"arn:aws:logs:{REGION}:{ACC}:log-group:/aws/ecs/mv-os-{env}/{_service(env)}"
    )


def _service(env: str) -> str:
    return "mv-os-backend-staging" if env == "staging" else "mv-os-backend"


SUBJECT = re.compile(
    r"repo:GITHUB_OWNER/mv-os:environment:(?P<environment>[\w-]+):ref:refs/heads/(?P<branch>[\w-]+)"
    r":job_workflow_ref:GITHUB_OWNER/mv-os/\.github/workflows/(?P<workflow>[\w-]+\.yml)@refs/heads/(?P=branch)"
)


def _subjects(trust: dict) -> list[dict[str, str]] | None:
    """(environment, branch, workflow) of each subject an OIDC trust admits; None for a service's trust."""
    (stmt,) = trust["Statement"]
    if "Federated" not in stmt["Principal"]:
        return None
    assert stmt["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert "StringLike" not in stmt["Condition"]  # no wildcard a feature branch could match
    equals = stmt["Condition"]["StringEquals"]
    assert equals["token.actions.githubusercontent.com:aud"] == "sts.amazonaws.com"
    subs = equals["token.actions.githubusercontent.com:sub"]
    return [SUBJECT.fullmatch(s).groupdict() for s in ([subs] if isinstance(subs, str) else subs)]


def test_each_infrastructure_role_is_trusted_only_by_its_own_workflow_environment_and_branch():
    trusts = {n.removesuffix(".trust.json"): _subjects(d) for n, d in DOCS.items() if n.endswith(".trust.json")}
    infra = {"infra-staging": ("staging", "develop"), "infra-plan-production": ("production-plan", "main"),
             "infra-production": ("production", "main")}  # fmt: skip
    for role, (environment, branch) in infra.items():
        workflow = "infra-staging.yml" if environment == "staging" else "infra-production.yml"
        assert trusts[role] == [{"environment": environment, "branch": branch, "workflow": workflow}]
    # The release workflows cannot assume an infrastructure role, and the infrastructure workflows no other role.
    for role, subjects in trusts.items():
        if subjects is not None and role not in infra:
            assert not [s for s in subjects if s["workflow"].startswith("infra-")], role


def test_the_production_infra_roles_split_planning_from_applying():
    plan, apply = DOCS["infra-plan-production.policy.json"], DOCS["infra-production.policy.json"]
    stack = f"arn:aws:cloudformation:{REGION}:{ACC}:stack/mv-os-production/0123"
    assert allowed(plan, "cloudformation:CreateChangeSet", stack)
    assert not allowed(plan, "cloudformation:ExecuteChangeSet", stack)
    assert allowed(apply, "cloudformation:ExecuteChangeSet", stack)
    assert not allowed(apply, "cloudformation:CreateChangeSet", stack)


def test_no_ci_role_can_change_iam():
    """IAM lives in the shared stack, applied by an administrator: a CI role that could write a policy could
    grant itself anything."""
    for name, policy in DOCS.items():
        if name.endswith(".policy.json"):
            for action in ("iam:CreateRole", "iam:PutRolePolicy", "iam:AttachRolePolicy", "iam:UpdateAssumeRolePolicy"):
                assert not allowed(policy, action, f"arn:aws:iam::{ACC}:role/mv-os-deploy-staging"), (name, action)


# What `nox -s infra -- plan` and `-- apply` call (scripts/infra); the scan below keeps these lists complete.
PLAN_CALLS = {
    "cloudformation:DescribeStacks",
    "cloudformation:CreateChangeSet",
    "cloudformation:DescribeChangeSet",
    "cloudformation:DeleteChangeSet",
    "apprunner:ListServices",
    "apprunner:DescribeService",
    "ecs:DescribeServices",
    "ecs:DescribeExpressGatewayService",
    "ecs:ListServiceDeployments",
}
APPLY_CALLS = {
    "cloudformation:DescribeStacks",
    "cloudformation:DescribeChangeSet",
    "cloudformation:ExecuteChangeSet",
    "cloudformation:DescribeStackEvents",
    "apprunner:ListServices",
    "apprunner:DescribeService",
    "ecs:DescribeServices",
    "ecs:DescribeExpressGatewayService",
    "ecs:ListServiceDeployments",
}


def infra_calls() -> set[str]:
    # The running service is read through the deploy target's adapter (scripts.release.targets): App Runner's
    # describe, or ECS Express Mode's.
    adapters = {"list_services", "describe_service", "describe_services", "list_service_deployments"}
    adapters.add("describe_express_gateway_service")
    return calls_in("infra", ("cloudformation", "apprunner", "ecs"), also=adapters) - NAME_CLASHES


def test_the_plan_and_apply_lists_are_what_scripts_infra_calls():
    assert infra_calls() == PLAN_CALLS | APPLY_CALLS


@pytest.mark.parametrize(
    ("role", "env", "calls"),
    [
        ("infra-staging", "staging", PLAN_CALLS | APPLY_CALLS),
        ("infra-plan-production", "production", PLAN_CALLS),
        ("infra-production", "production", APPLY_CALLS),
    ],
)
def test_each_infrastructure_role_can_make_its_calls_on_its_own_stack(role, env, calls):
    service = "mv-os-backend-staging" if env == "staging" else "mv-os-backend"
    on = {
        "cloudformation": f"arn:aws:cloudformation:{REGION}:{ACC}:stack/mv-os-{env}/0123",
        "apprunner": f"arn:aws:apprunner:{REGION}:{ACC}:service/{service}/0123",
        "ecs": f"arn:aws:ecs:{REGION}:{ACC}:service/mv-os-{env}/{service}",
    }
    policy = DOCS[f"{role}.policy.json"]
    for action in sorted(calls):
        resource = "*" if action == "apprunner:ListServices" else on[action.split(":")[0]]
        assert allowed(policy, action, resource), (role, action)
    if "cloudformation:CreateChangeSet" in calls:
        assert allowed(
            policy,
            "iam:PassRole",
            f"arn:aws:iam::{ACC}:role/mv-os-cfn-{env}",
            {"iam:PassedToService": "cloudformation.amazonaws.com"},
        )
