"""Each gate, made to fail (and to pass) on throwaway git repos, moto (Secrets Manager, ECR, STS) and a
Stubber'd App Runner client."""

from __future__ import annotations

import dataclasses

import boto3
import pytest
from botocore.stub import Stubber

from scripts.release import gates
from scripts.release.gates import Aws
from scripts.release.record import StagingRecord
from scripts.release.targets.apprunner import view
from tests.release.conftest import (
    REGION,
    REGISTRY,
    REPOSITORY,
    aws_clients,
    context,
    create_repository,
    create_secrets,
    digest_of,
    expect_describe,
    expect_service,
    image_ref,
    push_image,
)

# -- gate 1: branch -> environment ---------------------------------------------------------------------------


@pytest.mark.parametrize("env_name", ["staging", "production"])
def test_feature_branch_deploys_nowhere(repo, envs, env_name):
    repo.git("checkout", "-q", "-b", "feature/login-form")
    result = gates.branch_matches_environment(context(envs[env_name], repo))
    assert not result.ok
    assert "feature/login-form may not deploy" in result.reason
    assert "never used for feature iteration, UI testing or debugging" in result.reason


def test_develop_deploys_to_staging_only(repo, staging, production):
    assert gates.branch_matches_environment(context(staging, repo)).ok
    assert not gates.branch_matches_environment(context(production, repo)).ok


def test_main_deploys_to_production_only(repo, staging, production):
    repo.git("checkout", "-q", "main")
    assert gates.branch_matches_environment(context(production, repo)).ok
    assert not gates.branch_matches_environment(context(staging, repo)).ok


def test_detached_head_counts_only_as_the_ci_branch(repo, staging, monkeypatch):
    head = repo.git("rev-parse", "HEAD")
    repo.git("checkout", "-q", "--detach")
    assert not gates.branch_matches_environment(context(staging, repo)).ok
    monkeypatch.setenv("GITHUB_REF", "refs/heads/develop")
    monkeypatch.setenv("GITHUB_SHA", head)
    assert gates.branch_matches_environment(context(staging, repo)).ok
    monkeypatch.setenv("GITHUB_SHA", "f" * 40)  # a different commit than the checkout: refused
    assert not gates.branch_matches_environment(context(staging, repo)).ok


def test_unpushed_commits_do_not_deploy(repo, staging):
    pushed = repo.git("rev-parse", "HEAD")
    repo.git("update-ref", "refs/remotes/origin/develop", pushed)
    repo.commit("local.txt", "not pushed\n", "local only")
    result = gates.branch_matches_environment(context(staging, repo))
    assert not result.ok
    assert "is not the tip of develop" in result.reason


# -- gate 2: image by digest ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "image",
    [
        None,
        f"{REGISTRY}/{REPOSITORY}:latest",
        f"{REGISTRY}/{REPOSITORY}:develop",
        f"{REGISTRY}/{REPOSITORY}:develop@{digest_of('x')}",
        f"{REGISTRY}/{REPOSITORY}@sha256:1234",
        f"{REGISTRY}/{REPOSITORY}@{digest_of('x').upper()}",
        f"{REPOSITORY}@{digest_of('x')}",
    ],
)
def test_image_must_be_given_by_digest(repo, staging, image):
    result = gates.image_by_digest(context(staging, repo, image))
    assert not result.ok
    assert "digest" in result.reason or "no image" in result.reason


def test_image_from_another_repository_or_region_is_refused(repo, staging):
    other_repo = f"{REGISTRY}/something-else@{digest_of('x')}"
    other_region = f"123456789012.dkr.ecr.eu-west-1.amazonaws.com/{REPOSITORY}@{digest_of('x')}"
    assert "is not staging's repository" in gates.image_by_digest(context(staging, repo, other_repo)).reason
    assert "runs in us-east-1" in gates.image_by_digest(context(staging, repo, other_region)).reason


def test_image_by_digest_passes(repo, staging):
    ctx = context(staging, repo, image_ref(digest_of("x")))
    assert gates.image_by_digest(ctx).ok
    assert ctx.image.digest == digest_of("x")


# -- gate 3: production needs a staging-validated tree with the same digest ------------------------------------


@pytest.fixture
def validated(moto, repo):
    """develop's tree was deployed to staging with `digest` and passed smoke: the record exists."""
    create_repository()
    digest = push_image("build-of-develop")
    StagingRecord(boto3.client("ssm", region_name=REGION)).write(repo.tree(), digest, "0" * 40, "test")
    return digest


def _aws():
    return Aws(
        target=None,
        secretsmanager=boto3.client("secretsmanager", region_name=REGION),
        ecr=boto3.client("ecr", region_name=REGION),
        sts=boto3.client("sts", region_name=REGION),
        ssm=boto3.client("ssm", region_name=REGION),
    )


def _production_gate(repo, production, digest):
    ctx = context(production, repo, image_ref(digest), _aws())
    gates.image_by_digest(ctx)
    return gates.tree_validated_on_staging(ctx)


def test_merge_of_develop_into_main_has_the_validated_tree(validated, repo, production):
    develop_tree = repo.tree()
    repo.git("checkout", "-q", "main")
    repo.git("merge", "-q", "--no-ff", "-m", "Merge develop", "develop")
    assert repo.tree() == develop_tree
    assert repo.git("rev-parse", "HEAD") != repo.git("rev-parse", "develop")  # a new commit, the same tree
    result = _production_gate(repo, production, validated)
    assert result.ok, result.reason


def test_commit_made_directly_on_main_is_refused(validated, repo, production):
    repo.git("checkout", "-q", "main")
    repo.git("merge", "-q", "--no-ff", "-m", "Merge develop", "develop")
    repo.commit("hotfix.txt", "quick fix\n", "hotfix straight on main")
    result = _production_gate(repo, production, validated)
    assert not result.ok
    assert "never validated on staging" in result.reason
    assert "only through develop" in result.reason


def test_a_rebuilt_digest_for_the_validated_tree_is_refused(validated, repo, production):
    repo.git("checkout", "-q", "main")
    repo.git("merge", "-q", "--no-ff", "-m", "Merge develop", "develop")
    rebuilt = push_image("rebuild-of-the-same-commit")
    result = _production_gate(repo, production, rebuilt)
    assert not result.ok
    assert f"validated on staging with {validated}" in result.reason
    assert "never a rebuild" in result.reason


def test_staging_needs_no_record(repo, staging):
    assert gates.tree_validated_on_staging(context(staging, repo)).ok


# -- gate 4: secrets resolve to full ARNs inside the namespace -------------------------------------------------


def test_secrets_resolve_to_full_arns(moto, repo, staging):
    expected = create_secrets(staging)
    ctx = context(staging, repo, aws=_aws())
    result = gates.secrets_in_namespace(ctx)
    assert result.ok, result.reason
    assert ctx.secret_arns == expected
    assert all(arn.startswith(f"arn:aws:secretsmanager:{REGION}:") for arn in ctx.secret_arns.values())


def test_missing_secret_is_named(moto, repo, staging):
    create_secrets(staging)
    boto3.client("secretsmanager", region_name=REGION).delete_secret(
        SecretId="mv-os/staging/jwt-secret", ForceDeleteWithoutRecovery=True
    )
    result = gates.secrets_in_namespace(context(staging, repo, aws=_aws()))
    assert not result.ok
    assert "JWT_SECRET: secret mv-os/staging/jwt-secret does not exist" in result.reason


def test_secret_scheduled_for_deletion_is_refused(moto, repo, staging):
    create_secrets(staging)
    boto3.client("secretsmanager", region_name=REGION).delete_secret(
        SecretId="mv-os/staging/database-url", RecoveryWindowInDays=7
    )
    result = gates.secrets_in_namespace(context(staging, repo, aws=_aws()))
    assert not result.ok
    assert "DATABASE_URL" in result.reason


def test_staging_may_not_read_a_production_secret(moto, repo, staging, production):
    create_secrets(staging)
    create_secrets(production)
    crossed = dataclasses.replace(staging, secrets={**staging.secrets, "JWT_SECRET": "mv-os/jwt-secret"})
    result = gates.secrets_in_namespace(context(crossed, repo, aws=_aws()))
    assert not result.ok
    assert "mv-os/jwt-secret is outside staging's namespace mv-os/staging/*" in result.reason


def test_production_may_not_read_a_staging_secret(moto, repo, staging, production):
    create_secrets(staging)
    create_secrets(production)
    crossed = dataclasses.replace(
        production, secrets={**production.secrets, "DATABASE_URL": "mv-os/staging/database-url"}
    )
    result = gates.secrets_in_namespace(context(crossed, repo, aws=_aws()))
    assert not result.ok
    assert "mv-os/staging/database-url is outside production's namespace" in result.reason


# -- gate 5: no operation in progress --------------------------------------------------------------------------


def test_busy_service_is_waited_for_then_refused(repo, staging, target, apprunner, clock, moto):
    _, stub = apprunner
    expect_service(stub, staging, status="OPERATION_IN_PROGRESS")
    # Backoff 2, 3, 4.5, 6.75, then 10 s: describes at 0, 2, 5, 9.5, 16.25, 26.25, 36.25, 46.25, 56.25 s, then
    # the next wait would pass the 60 s budget.  Stubber fails the test if the gate polls more or less.
    for _ in range(8):
        expect_describe(stub, staging, status="OPERATION_IN_PROGRESS")
    ctx = context(staging, repo, aws=aws_clients(target), idle_budget=60)
    result = gates.no_operation_in_progress(ctx)
    assert not result.ok
    assert "still busy with another operation after 60s" in result.reason
    assert clock.now <= 60
    assert max(clock.sleeps) <= 10


def test_idle_service_passes(repo, staging, target, apprunner, moto):
    _, stub = apprunner
    expect_service(stub, staging)
    ctx = context(staging, repo, aws=aws_clients(target))
    assert gates.no_operation_in_progress(ctx).ok
    assert ctx.service.status == "RUNNING"


def test_paused_service_is_refused(repo, staging, target, apprunner, moto):
    _, stub = apprunner
    expect_service(stub, staging, status="PAUSED")
    result = gates.no_operation_in_progress(context(staging, repo, aws=aws_clients(target)))
    assert not result.ok
    assert "PAUSED, not RUNNING" in result.reason


# -- gate 6: the request pins NODE_ENV and turns auto-deploy off ----------------------------------------------


def _built(env, repo):
    ctx = context(env, repo, image_ref(digest_of("x")))
    gates.image_by_digest(ctx)
    assert gates.request_pins_environment(ctx).ok
    return ctx


def test_request_passes_as_built(repo, staging, production):
    for env in (staging, production):
        ctx = _built(env, repo)
        variables = ctx.request["SourceConfiguration"]["ImageRepository"]["ImageConfiguration"][
            "RuntimeEnvironmentVariables"
        ]
        assert variables["NODE_ENV"] == env.name


def test_request_with_the_wrong_node_env_is_refused(repo, staging):
    ctx = _built(staging, repo)
    ctx.request["SourceConfiguration"]["ImageRepository"]["ImageConfiguration"]["RuntimeEnvironmentVariables"][
        "NODE_ENV"
    ] = "production"
    result = gates.check_request(staging, view(ctx.request), ctx.image)
    assert not result.ok
    assert "NODE_ENV is 'production', must be 'staging'" in result.reason


@pytest.mark.parametrize("value", [True, None])
def test_request_with_auto_deploy_on_or_unset_is_refused(repo, staging, value):
    ctx = _built(staging, repo)
    ctx.request["SourceConfiguration"]["AutoDeploymentsEnabled"] = value
    result = gates.check_request(staging, view(ctx.request), ctx.image)
    assert not result.ok
    assert "AutoDeploymentsEnabled must be False" in result.reason


def test_placeholder_variables_are_never_sent(repo):
    from scripts.release.environments import load

    raw_staging = load()["staging"]  # the committed file still has "<staging phone number id>"
    ctx = context(raw_staging, repo, image_ref(digest_of("x")))
    gates.image_by_digest(ctx)
    result = gates.request_pins_environment(ctx)
    assert not result.ok
    assert "WHATSAPP_PHONE_NUMBER_ID still a placeholder" in result.reason


# -- AWS gates fail closed -------------------------------------------------------------------------------------


def test_without_credentials_every_aws_gate_fails_closed(repo, production):
    repo.git("checkout", "-q", "main")
    ctx = context(production, repo, image_ref(digest_of("x")))
    results = {r.name: r for r in gates.evaluate(ctx)}
    for name in ("aws-credentials", "staging-validated", "secrets-namespace", "no-operation-in-progress"):
        assert not results[name].ok
        assert "AWS credentials are missing" in results[name].reason


def test_unusable_credentials_fail_closed(repo, staging, aws_env):
    sts = boto3.client("sts", region_name=REGION)
    with Stubber(sts) as stub:
        stub.add_client_error("get_caller_identity", service_error_code="ExpiredToken", http_status_code=403)
        ctx = context(staging, repo, aws=Aws(target=None, secretsmanager=None, ecr=None, sts=sts))
        assert not gates.aws_credentials(ctx).ok
        result = gates.secrets_in_namespace(ctx)
    assert not result.ok
    assert "credentials are missing or unusable" in result.reason


def test_the_rehearsal_switch_is_never_sent_to_a_service(repo, staging):
    """Only the rehearsal's stand-in may let production use a local database; the engine refuses to send it."""
    from mv_os.policy import REHEARSAL_LOCAL_DATABASE

    assert gates.REHEARSAL_LOCAL_DATABASE == REHEARSAL_LOCAL_DATABASE
    ctx = _built(staging, repo)
    ctx.request["SourceConfiguration"]["ImageRepository"]["ImageConfiguration"]["RuntimeEnvironmentVariables"][
        REHEARSAL_LOCAL_DATABASE
    ] = "1"
    result = gates.check_request(staging, view(ctx.request), ctx.image)
    assert not result.ok
    assert REHEARSAL_LOCAL_DATABASE in result.reason
