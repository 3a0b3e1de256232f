"""The IAM documents in infra/iam, evaluated with a small IAM-like evaluator (explicit Deny wins, else an Allow
must match action, resource and `StringEquals` conditions; `*` and `?` wildcards): the staging role cannot touch
production secrets, the production role cannot touch staging secrets, only the recorder writes a staging-validated
record, release records are write-once, and each GitHub OIDC trust admits only its own environment, branch and
workflow."""

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


def allowed(policy: dict, action: str, resource: str, context: dict[str, str] | None = None) -> bool:
    """`context` holds the request's condition keys (e.g. iam:PassedToService); a key the request does not
    carry never satisfies a condition."""
    context = context or {}

    def conditions_hold(stmt) -> bool:
        for operator, keys in stmt.get("Condition", {}).items():
            assert operator == "StringEquals", f"the evaluator knows StringEquals only, not {operator}"
            if any(context.get(key) not in _list(want) for key, want in keys.items()):
                return False
        return True

    def matches(stmt):
        return (
            any(fnmatch.fnmatchcase(action, a) for a in _list(stmt["Action"]))
            and any(fnmatch.fnmatchcase(resource, r) for r in _list(stmt["Resource"]))
            and conditions_hold(stmt)
        )

    if any(s["Effect"] == "Deny" and matches(s) for s in policy["Statement"]):
        return False
    return any(s["Effect"] == "Allow" and matches(s) for s in policy["Statement"])


def secret(name: str) -> str:
    return f"arn:aws:secretsmanager:{REGION}:{ACC}:secret:{name}-Ab12Cd"


ENVS = load()
STAGING_SECRETS = [secret(n) for n in ENVS["staging"].secrets.values()]
PRODUCTION_SECRETS = [secret(n) for n in ENVS["production"].secrets.values()]
SMOKE_PASSWORD = secret(ENVS["staging"].secrets["SMOKE_USER_PASSWORD"])


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


def test_deploy_roles_read_no_secret_value_but_stagings_smoke_password():
    """The staging smoke test logs in; nothing else a deploy does needs a value (the service resolves them)."""
    for env in ("staging", "production"):
        for arn in STAGING_SECRETS + PRODUCTION_SECRETS:
            readable = env == "staging" and arn == SMOKE_PASSWORD
            assert allowed(doc(f"deploy-{env}.policy.json"), "secretsmanager:GetSecretValue", arn) == readable, arn
    # A secret whose name merely starts like it is not the smoke password.
    longer = secret(ENVS["staging"].secrets["SMOKE_USER_PASSWORD"] + "-extra")
    assert not allowed(doc("deploy-staging.policy.json"), "secretsmanager:GetSecretValue", longer)


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


def test_production_never_pushes_images_and_staging_pushes_builds():
    repo = f"arn:aws:ecr:{REGION}:{ACC}:repository/mv-os-backend"
    assert not allowed(doc("deploy-production.policy.json"), "ecr:PutImage", repo)
    assert allowed(doc("deploy-production.policy.json"), "ecr:DescribeImages", repo)
    assert allowed(doc("deploy-staging.policy.json"), "ecr:PutImage", repo)


def subject(environment: str, branch: str, workflow: str) -> str:
    """The `sub` GitHub issues once the repository's OIDC template includes repo, context, ref and
    job_workflow_ref (.github/repository-settings.toml, [oidc])."""
    repo = "GITHUB_OWNER/mv-os"
    return (
        f"repo:{repo}:environment:{environment}:ref:refs/heads/{branch}"
        f":job_workflow_ref:{repo}/.github/workflows/{workflow}@refs/heads/{branch}"
    )


TRUSTS = {
    "deploy-staging.trust.json": {subject("staging", "develop", w) for w in ("deploy-staging.yml", "rollback.yml")},
    "record-staging.trust.json": {subject("staging-record", "develop", "deploy-staging.yml")},
    "deploy-production.trust.json": {
        subject("production", "main", w) for w in ("deploy-production.yml", "rollback.yml")
    },
    "plan-production.trust.json": {subject("production-plan", "main", "deploy-production.yml")},
    "audit.trust.json": {subject("audit", b, "audit.yml") for b in ("main", "develop")},
}


@pytest.mark.parametrize("name", sorted(TRUSTS))
def test_oidc_trust_admits_only_its_environment_branch_and_workflow(name):
    (stmt,) = doc(name)["Statement"]
    assert stmt["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert stmt["Principal"]["Federated"].endswith(":oidc-provider/token.actions.githubusercontent.com")
    assert set(stmt["Condition"]) == {"StringEquals"}  # no StringLike: no wildcard a feature branch could match
    equals = stmt["Condition"]["StringEquals"]
    assert equals["token.actions.githubusercontent.com:aud"] == "sts.amazonaws.com"
    assert set(_list(equals["token.actions.githubusercontent.com:sub"])) == TRUSTS[name]


@pytest.mark.parametrize(
    ("name", "sub"),
    [
        ("deploy-production.trust.json", subject("production", "develop", "deploy-production.yml")),
        ("deploy-production.trust.json", subject("production", "main", "ci.yml")),
        ("deploy-production.trust.json", "repo:GITHUB_OWNER/mv-os:environment:production"),
        ("deploy-staging.trust.json", subject("staging", "feature-x", "deploy-staging.yml")),
        ("record-staging.trust.json", subject("staging", "develop", "deploy-staging.yml")),
        ("plan-production.trust.json", subject("production-plan", "main", "rollback.yml")),
    ],
)
def test_oidc_trust_refuses_another_branch_workflow_or_the_old_environment_only_subject(name, sub):
    stmt = doc(name)["Statement"][0]
    context = {
        "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
        "token.actions.githubusercontent.com:sub": sub,
    }
    trust_as_policy = {"Statement": [{**stmt, "Resource": "*"}]}
    assert not allowed(trust_as_policy, "sts:AssumeRoleWithWebIdentity", "*", context)
    good = {**context, "token.actions.githubusercontent.com:sub": sorted(TRUSTS[name])[0]}
    assert allowed(trust_as_policy, "sts:AssumeRoleWithWebIdentity", "*", good)


# AWS's managed policy AWSAppRunnerFullAccess passes roles with iam:PassedToService = apprunner.amazonaws.com:
# App Runner is the service that receives both the access role and the instance role in UpdateService, whatever
# principal (build./tasks.apprunner.amazonaws.com) later assumes them.
APP_RUNNER = "apprunner.amazonaws.com"


@pytest.mark.parametrize("env", ["staging", "production"])
def test_deploy_roles_pass_their_service_roles_to_app_runner_only(env):
    policy = doc(f"deploy-{env}.policy.json")
    own = [
        f"arn:aws:iam::{ACC}:role/mv-os-apprunner-ecr-access",
        f"arn:aws:iam::{ACC}:role/mv-os-apprunner-instance-{env}",
    ]
    for role in own:
        assert allowed(policy, "iam:PassRole", role, {"iam:PassedToService": APP_RUNNER})
        for other in ("build.apprunner.amazonaws.com", "tasks.apprunner.amazonaws.com", "ec2.amazonaws.com"):
            assert not allowed(policy, "iam:PassRole", role, {"iam:PassedToService": other})
    other_env = "production" if env == "staging" else "staging"
    other_role = f"arn:aws:iam::{ACC}:role/mv-os-apprunner-instance-{other_env}"
    assert not allowed(policy, "iam:PassRole", other_role, {"iam:PassedToService": APP_RUNNER})


def _record(tree: str = "a" * 40) -> str:
    return f"arn:aws:ssm:{REGION}:{ACC}:parameter/mv-os/release/staging-validated/{tree}"


def _history(n: int = 7) -> str:
    return f"arn:aws:ssm:{REGION}:{ACC}:parameter/mv-os/release/production-history/{n:08d}"


def test_only_the_recorder_writes_a_staging_validated_record():
    create = {"ssm:Overwrite": "false"}
    assert allowed(doc("record-staging.policy.json"), "ssm:PutParameter", _record(), create)
    for name in ("deploy-staging", "deploy-production", "plan-production", "audit"):
        assert not allowed(doc(f"{name}.policy.json"), "ssm:PutParameter", _record(), create), name
    for name in ("deploy-staging", "deploy-production", "plan-production", "record-staging"):
        assert allowed(doc(f"{name}.policy.json"), "ssm:GetParameter", _record()), name


def test_the_recorder_can_do_nothing_but_look_and_record():
    policy = doc("record-staging.policy.json")
    staging = f"arn:aws:apprunner:{REGION}:{ACC}:service/mv-os-backend-staging/0123"
    assert allowed(policy, "apprunner:DescribeService", staging)
    for action in ("apprunner:UpdateService", "apprunner:StartDeployment"):
        assert not allowed(policy, action, staging)
    assert not allowed(policy, "ecr:PutImage", f"arn:aws:ecr:{REGION}:{ACC}:repository/mv-os-backend")
    assert not allowed(policy, "ssm:PutParameter", _history(), {"ssm:Overwrite": "false"})
    for arn in STAGING_SECRETS + PRODUCTION_SECRETS:  # only the smoke login, to smoke-test before recording
        assert allowed(policy, "secretsmanager:GetSecretValue", arn) == (arn == SMOKE_PASSWORD), arn
        assert not allowed(policy, "secretsmanager:PutSecretValue", arn)


@pytest.mark.parametrize(("name", "arn"), [("record-staging", _record()), ("deploy-production", _history())])
def test_release_records_are_write_once_and_never_deleted(name, arn):
    policy = doc(f"{name}.policy.json")
    assert allowed(policy, "ssm:PutParameter", arn, {"ssm:Overwrite": "false"})
    assert not allowed(policy, "ssm:PutParameter", arn, {"ssm:Overwrite": "true"})
    for action in ("ssm:DeleteParameter", "ssm:DeleteParameters", "ssm:LabelParameterVersion"):
        assert not allowed(policy, action, arn)


def test_only_production_appends_to_its_history_and_plan_reads_it():
    create = {"ssm:Overwrite": "false"}
    assert allowed(doc("deploy-production.policy.json"), "ssm:GetParametersByPath", _history()[: -len("/00000007")])
    assert allowed(doc("plan-production.policy.json"), "ssm:GetParametersByPath", _history()[: -len("/00000007")])
    for name in ("deploy-staging", "record-staging", "plan-production", "audit"):
        assert not allowed(doc(f"{name}.policy.json"), "ssm:PutParameter", _history(), create), name


@pytest.mark.parametrize(
    ("env", "service", "other"),
    [("staging", "mv-os-backend-staging", "mv-os-backend"), ("production", "mv-os-backend", "mv-os-backend-staging")],
)
def test_deploy_roles_read_their_own_service_log_only(env, service, other):
    policy = doc(f"deploy-{env}.policy.json")
    group = f"arn:aws:logs:{REGION}:{ACC}:log-group:/aws/apprunner/{{}}/0123abcd/application:*"
    assert allowed(policy, "logs:FilterLogEvents", group.format(service))
    assert not allowed(policy, "logs:FilterLogEvents", group.format(other))


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
    assert not allowed(
        plan,
        "iam:PassRole",
        f"arn:aws:iam::{ACC}:role/mv-os-apprunner-instance-production",
        {"iam:PassedToService": APP_RUNNER},
    )
