"""The release flow's inside defects, each reproduced: a rollback to a never-promoted digest, a second build of a
validated tree, a stale re-run, a record forged for a digest staging never ran.  App Runner under Stubber; SSM,
ECR, Secrets Manager, STS and CloudWatch Logs under moto."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import ANY

from scripts.release import flows
from scripts.release import rollback as rollback_mod
from scripts.release.record import ProductionHistory, StagingRecord
from scripts.release.summary import Summary, log_group, tail
from tests.release.conftest import (
    OP_ID,
    REGION,
    SERVICE_IDS,
    aws_clients,
    context,
    create_repository,
    create_secrets,
    digest_of,
    expect_describe,
    expect_service,
    image_ref,
    operations,
    push_image,
    service,
    service_arn,
    smoke_passes,
)


@pytest.fixture
def world(moto, repo, target, apprunner):
    create_repository()
    builds = {label: push_image(label) for label in ("r1", "r2", "develop-only")}
    return {**builds, "stub": apprunner[1], "aws": aws_clients(target)}


def _ssm():
    return boto3.client("ssm", region_name=REGION)


def _ran(label_digest, git_sha, variables=None):
    ProductionHistory(_ssm()).append(
        digest=label_digest,
        image=image_ref(label_digest),
        tree="t" * 40,
        git_sha=git_sha,
        run="test",
        kind="deploy",
        at="2026-12-01T00:00:00+00:00",
        configuration={
            "Port": "8080",
            "RuntimeEnvironmentVariables": {"NODE_ENV": "production", "GIT_SHA": git_sha, **(variables or {})},
            "RuntimeEnvironmentSecrets": {},
        },
    )


def _expect_update(stub, env, digest, variables=ANY):
    stub.add_response(
        "update_service",
        {"Service": service(env, status="OPERATION_IN_PROGRESS"), "OperationId": OP_ID},
        {
            "ServiceArn": service_arn(env.name),
            "SourceConfiguration": {
                "ImageRepository": {
                    "ImageIdentifier": image_ref(digest),
                    "ImageRepositoryType": "ECR",
                    "ImageConfiguration": variables,
                },
                "AutoDeploymentsEnabled": False,
                "AuthenticationConfiguration": ANY,
            },
            **({"InstanceConfiguration": ANY} if variables is ANY else {}),
            "HealthCheckConfiguration": ANY,
        },
    )
    stub.add_response(
        "list_operations", operations("SUCCEEDED"), {"ServiceArn": service_arn(env.name), "MaxResults": 20}
    )


# -- defect 1: production rolls back only to its own history -------------------------------------------------------
def test_rollback_to_a_develop_build_that_never_reached_production_is_refused(world, repo, production):
    """The develop build even has a staging-validated record: that is not enough for production."""
    create_secrets(production)
    StagingRecord(_ssm()).write("d" * 40, world["develop-only"], "d" * 40, "staging-run")
    _ran(world["r1"], "1" * 40)
    expect_service(world["stub"], production, digest=world["r1"])
    expect_describe(world["stub"], production, digest=world["r1"])  # the idle gate
    lines = []
    ctx = context(production, repo, aws=world["aws"])
    code = rollback_mod.rollback(ctx, world["develop-only"], lines.append, smoke_passes, flows.append_history)
    assert code == 1
    assert f"FAIL production-history: {world['develop-only']} never ran on production" in "\n".join(lines)
    assert lines[-1] == "rollback REFUSED: nothing was changed"


def test_rollback_goes_to_the_previous_history_entry_with_its_recorded_configuration(world, repo, production):
    create_secrets(production)
    _ran(world["r1"], "1" * 40, {"LOG_LEVEL": "DEBUG"})  # the configuration release 1 ran with
    _ran(world["r2"], "2" * 40)
    stub = world["stub"]
    expect_service(stub, production, digest=world["r2"])
    expect_describe(stub, production, digest=world["r2"])
    recorded = {
        "Port": "8080",
        "RuntimeEnvironmentVariables": {"NODE_ENV": "production", "GIT_SHA": "1" * 40, "LOG_LEVEL": "DEBUG"},
        "RuntimeEnvironmentSecrets": {},
    }
    _expect_update(stub, production, world["r1"], recorded)
    lines = []
    ctx = context(production, repo, aws=world["aws"])
    assert rollback_mod.rollback(ctx, None, lines.append, smoke_passes, flows.append_history) == 0, lines
    assert lines[-1] == f"rolled back to {world['r1']}"
    latest = ProductionHistory(_ssm()).latest()
    assert (latest.seq, latest.digest, latest.kind) == (3, world["r1"], "rollback")


# -- defect 3: a validated tree is never built twice ---------------------------------------------------------------
def test_staging_deploys_the_recorded_digest_instead_of_a_rebuild(world, repo, staging):
    """The back-merge: main's merge commit comes back to develop with the same tree, CI builds it again."""
    create_secrets(staging)
    StagingRecord(_ssm()).write(repo.tree(), world["r1"], "0" * 40, "first-run")
    rebuild = push_image("rebuild-of-the-same-tree")
    stub = world["stub"]
    expect_service(stub, staging, digest=world["r2"])
    _expect_update(stub, staging, world["r1"])
    lines = []
    ctx = context(staging, repo, image_ref(rebuild), world["aws"])
    assert flows.deploy(ctx, out=lines.append, smoke=smoke_passes) == 0, lines
    assert f"was already validated with {world['r1']}: deploying that digest" in lines[0]


# -- defect 4: stale runs ------------------------------------------------------------------------------------------
def test_a_stale_run_is_refused_by_the_real_branch_tip(world, repo, production, tmp_path):
    """actions/checkout points origin/main at the run's own commit; the gate asks the remote itself."""
    origin = tmp_path / "origin.git"
    repo.git("init", "-q", "--bare", str(origin))
    repo.git("remote", "add", "origin", str(origin))
    repo.git("checkout", "-q", "main")
    old = repo.git("rev-parse", "HEAD")
    repo.commit("new.txt", "newer\n", "newer release")
    repo.git("push", "-q", "origin", "main")
    repo.git("checkout", "-q", "--detach", old)
    repo.git("update-ref", "refs/remotes/origin/main", old)  # what actions/checkout leaves behind
    ctx = context(production, repo)
    from scripts.release import gates

    # A detached HEAD counts as main only in GitHub Actions; the tip is then read from origin, not the checkout.
    result = gates.branch_matches_environment(ctx)
    assert not result.ok
    repo.git("checkout", "-q", "-B", "main", old)
    result = gates.branch_matches_environment(ctx)
    assert not result.ok and "is not the tip of main" in result.reason and "re-run of an older run" in result.reason


def test_a_tree_older_than_what_production_runs_is_refused(world, repo, production):
    from scripts.release import gates

    repo.git("checkout", "-q", "main")
    old = repo.git("rev-parse", "HEAD")
    newer = repo.commit("new.txt", "newer\n", "newer release")
    _ran(world["r2"], newer)
    repo.git("checkout", "-q", "-B", "main", old)  # the late approval of the older run
    result = gates.newer_than_production(context(production, repo, aws=world["aws"]))
    assert not result.ok and "this run is older than production" in result.reason
    repo.git("checkout", "-q", "-B", "main", newer)
    repo.commit("next.txt", "next\n", "next release")
    assert gates.newer_than_production(context(production, repo, aws=world["aws"])).ok


# -- defect 2: the record is written only for what staging runs for this commit ------------------------------------
def test_the_recorder_refuses_a_digest_staging_does_not_run(world, repo, staging):
    head = repo.git("rev-parse", "HEAD")
    expect_service(world["stub"], staging, digest=world["r1"], variables={"GIT_SHA": head})
    lines = []
    ctx = context(staging, repo, image_ref(world["develop-only"]), world["aws"])
    assert flows.record(ctx, out=lines.append, smoke=smoke_passes) == 1
    assert any(line.startswith("FAIL staging-runs-it:") and world["r1"] in line for line in lines)
    assert StagingRecord(_ssm()).read(repo.tree()) is None


def test_the_recorder_records_what_staging_runs_for_this_commit(world, repo, staging):
    head = repo.git("rev-parse", "HEAD")
    expect_service(world["stub"], staging, digest=world["r1"], variables={"GIT_SHA": head})
    lines = []
    ctx = context(staging, repo, image_ref(world["r1"]), world["aws"])
    assert flows.record(ctx, out=lines.append, smoke=smoke_passes) == 0, lines
    assert StagingRecord(_ssm()).read(repo.tree()).digest == world["r1"]


# -- defect 10: what a person sees after a failed deploy -----------------------------------------------------------
def test_a_failed_deploy_shows_the_application_log_tail(moto):
    logs = boto3.client("logs", region_name=REGION)
    arn = service_arn("production")
    group = log_group(arn)
    assert group == f"/aws/apprunner/mv-os-backend/{SERVICE_IDS['production']}/application"
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName="instance/1")
    import time

    now_ms = int(time.time() * 1000)
    events = [{"timestamp": now_ms - 1000 + i, "message": f"line {i}"} for i in range(40)]
    logs.put_log_events(logGroupName=group, logStreamName="instance/1", logEvents=events)
    lines = tail(logs, arn, lines=5)
    assert lines == [f"log | line {i}" for i in range(35, 40)]
    assert tail(None, arn) == []
    assert "cannot read" in tail(logs, service_arn("staging"))[0]


def test_the_job_summary_names_result_url_and_digest(tmp_path):
    summary = Summary("deploy", "production")
    out = summary.tee(lambda line: None)
    out("PASS branch (main -> production)")
    summary.url, summary.digest = "https://mv-os.example", digest_of("x")
    path = tmp_path / "summary.md"
    summary.write(1, str(path))
    text = path.read_text()
    assert "### `deploy` production: FAILED or REFUSED" in text
    assert "https://mv-os.example" in text and digest_of("x") in text and "PASS branch" in text


# -- defect 11: a start command set on the service survives a deploy ------------------------------------------
def test_the_update_request_keeps_the_services_start_command(staging):
    from scripts.release.images import ImageRef
    from scripts.release.targets.apprunner import from_describe, is_redeploy, update_request

    live = service(staging, digest=digest_of("running"))
    live["SourceConfiguration"]["ImageRepository"]["ImageConfiguration"]["StartCommand"] = "/app/start --fast"
    state = from_describe(live)
    request = update_request(staging, ImageRef.parse(image_ref(digest_of("new"))), {}, "0" * 40, state)
    assert (
        request["SourceConfiguration"]["ImageRepository"]["ImageConfiguration"]["StartCommand"] == "/app/start --fast"
    )
    same = update_request(staging, ImageRef.parse(state.image), state.secrets, "0" * 40, state)
    same["SourceConfiguration"]["ImageRepository"]["ImageConfiguration"].pop("StartCommand")
    assert not is_redeploy(same, state), "dropping the start command is a change, not a redeploy"
