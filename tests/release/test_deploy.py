"""The deploy flow end to end: gates -> update_service -> poll that operation -> smoke -> record (staging) or
rollback (production).  App Runner under Stubber, Secrets Manager / ECR / STS under moto, an instant clock."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import ANY

from scripts.release import flows
from scripts.release import rollback as rollback_mod
from scripts.release.record import StagingRecord
from tests.release.conftest import (
    OP_ID,
    REGION,
    aws_clients,
    context,
    create_repository,
    create_secrets,
    expect_service,
    image_ref,
    operations,
    push_image,
    service,
    service_arn,
    smoke_fails,
    smoke_passes,
)

ROLLBACK_OP = "7b5f4d20-2222-4333-8444-555566667777"


@pytest.fixture
def world(moto, repo, target, apprunner):
    """moto has the repository (tags immutable), two builds and both environments' secrets."""
    create_repository()
    old, new = push_image("build-old"), push_image("build-new")
    return {"old": old, "new": new, "stub": apprunner[1], "aws": aws_clients(target)}


def expect_deploy(stub, env, new_digest, *statuses, op_id=OP_ID):
    stub.add_response(
        "update_service",
        {"Service": service(env, status="OPERATION_IN_PROGRESS"), "OperationId": op_id},
        {
            "ServiceArn": service_arn(env.name),
            "SourceConfiguration": {
                "ImageRepository": {
                    "ImageIdentifier": image_ref(new_digest),
                    "ImageRepositoryType": "ECR",
                    "ImageConfiguration": ANY,
                },
                "AutoDeploymentsEnabled": False,
                "AuthenticationConfiguration": ANY,
            },
            "InstanceConfiguration": ANY,
            "HealthCheckConfiguration": ANY,
        },
    )
    for status in statuses:
        stub.add_response(
            "list_operations",
            operations(status, op_id=op_id),
            {"ServiceArn": service_arn(env.name), "MaxResults": 20},
        )


def _record():
    return StagingRecord(boto3.client("ssm", region_name=REGION))


def test_staging_deploy_success_leaves_the_record_to_the_recorder(world, repo, staging):
    """The deploy role cannot write a record (infra/iam): the deploy only says what the record job checks next."""
    create_secrets(staging)
    stub = world["stub"]
    expect_service(stub, staging, digest=world["old"])
    expect_deploy(stub, staging, world["new"], "IN_PROGRESS", "SUCCEEDED")
    lines = []
    ctx = context(staging, repo, image_ref(world["new"]), world["aws"])
    assert flows.deploy(ctx, out=lines.append, smoke=smoke_passes) == 0
    assert _record().read(repo.tree()) is None
    assert any("passed smoke; the record job" in line for line in lines)
    assert any("s] operation" in line and "IN_PROGRESS" in line for line in world["aws"].target.lines)


def test_staging_smoke_failure_writes_no_record(world, repo, staging):
    create_secrets(staging)
    stub = world["stub"]
    expect_service(stub, staging, digest=world["old"])
    expect_deploy(stub, staging, world["new"], "SUCCEEDED")
    lines = []
    ctx = context(staging, repo, image_ref(world["new"]), world["aws"])
    assert flows.deploy(ctx, out=lines.append, smoke=smoke_fails) == 1
    assert _record().read(repo.tree()) is None
    assert "FAIL readyz: expected 200, got 503" in lines
    assert any("can never reach production" in line for line in lines)


def test_gate_failure_changes_nothing(world, repo, staging):
    """No secrets exist: the secrets gate fails, and no update_service call is made (Stubber would reject it)."""
    stub = world["stub"]
    expect_service(stub, staging, digest=world["old"])
    lines = []
    ctx = context(staging, repo, image_ref(world["new"]), world["aws"])
    assert flows.deploy(ctx, out=lines.append, smoke=smoke_passes) == 1
    assert lines[-1] == "deploy REFUSED: nothing was changed on mv-os-backend-staging"


def _on_main_validated(repo, digest):
    _record().write(repo.tree(), digest, repo.git("rev-parse", "HEAD"), "test")
    repo.git("checkout", "-q", "main")
    repo.git("merge", "-q", "--no-ff", "-m", "Merge develop", "develop")


def test_production_app_runner_rollback_is_a_failed_deploy(world, repo, production):
    create_secrets(production)
    _on_main_validated(repo, world["new"])
    stub = world["stub"]
    expect_service(stub, production, digest=world["old"])
    expect_deploy(stub, production, world["new"], "IN_PROGRESS", "ROLLBACK_IN_PROGRESS", "ROLLBACK_SUCCEEDED")
    lines = []
    ctx = context(production, repo, image_ref(world["new"]), world["aws"])
    assert flows.deploy(ctx, out=lines.append, smoke=smoke_passes) == 1
    assert "App Runner rolled the deploy back" in lines[-1]
    assert world["old"] in lines[-1]  # says what keeps running


def test_production_smoke_failure_rolls_back_to_the_previous_digest(world, repo, production):
    create_secrets(production)
    _on_main_validated(repo, world["new"])
    stub = world["stub"]
    expect_service(stub, production, digest=world["old"])
    expect_deploy(stub, production, world["new"], "SUCCEEDED")
    # The rollback: update_service back to the digest describe_service reported before the deploy.
    stub.add_response(
        "update_service",
        {"Service": service(production, status="OPERATION_IN_PROGRESS"), "OperationId": ROLLBACK_OP},
        {
            "ServiceArn": service_arn("production"),
            "SourceConfiguration": {
                "ImageRepository": {
                    "ImageIdentifier": image_ref(world["old"]),
                    "ImageRepositoryType": "ECR",
                    "ImageConfiguration": ANY,
                },
                "AutoDeploymentsEnabled": False,
                "AuthenticationConfiguration": ANY,
            },
        },
    )
    stub.add_response(
        "list_operations",
        operations("SUCCEEDED", op_id=ROLLBACK_OP),
        {"ServiceArn": service_arn("production"), "MaxResults": 20},
    )
    lines = []
    ctx = context(production, repo, image_ref(world["new"]), world["aws"])
    assert flows.deploy(ctx, out=lines.append, smoke=smoke_fails) == 1
    assert world["new"] in lines[-1] and world["old"] in lines[-1]
    assert lines[-1].startswith("rolled back: production smoke failed")


def test_production_deploy_of_an_unvalidated_tree_is_refused(world, repo, production):
    create_secrets(production)
    repo.git("checkout", "-q", "main")
    repo.commit("direct.txt", "straight on main\n", "direct commit on main")
    stub = world["stub"]
    expect_service(stub, production, digest=world["old"])
    lines = []
    ctx = context(production, repo, image_ref(world["new"]), world["aws"])
    assert flows.deploy(ctx, out=lines.append, smoke=smoke_passes) == 1
    assert any(line.startswith("FAIL staging-validated:") and "through develop" in line for line in lines)


def test_validated_digest_prints_the_image_for_this_tree(world, repo, production):
    _on_main_validated(repo, world["new"])
    out, err = [], []
    assert flows.validated_digest(context(production, repo, aws=world["aws"]), out=out.append, err=err.append) == 0
    assert out == [image_ref(world["new"])]
    repo.commit("direct.txt", "straight on main\n", "direct commit on main")
    out, err = [], []
    assert flows.validated_digest(context(production, repo, aws=world["aws"]), out=out.append, err=err.append) == 1
    assert out == [] and "no staging-validated image" in err[0]


def test_manual_rollback_goes_back_to_the_previous_image(world, repo, staging):
    create_secrets(staging)
    stub = world["stub"]
    previous = image_ref(world["old"])
    # describe (rollback reads MV_OS_PREVIOUS_IMAGE), then the gates' wait_until_idle describe
    expect_service(stub, staging, digest=world["new"], variables={"MV_OS_PREVIOUS_IMAGE": previous})
    stub.add_response(
        "describe_service",
        {"Service": service(staging, digest=world["new"], variables={"MV_OS_PREVIOUS_IMAGE": previous})},
        {"ServiceArn": service_arn("staging")},
    )
    expect_deploy(stub, staging, world["old"], "SUCCEEDED")
    repo.git("checkout", "-q", "-b", "feature/anything")  # a rollback is not a release: any checkout may run it
    lines = []
    ctx = context(staging, repo, aws=world["aws"])
    assert rollback_mod.rollback(ctx, None, lines.append, smoke_passes, flows.append_history) == 0
    assert lines[-1] == f"rolled back to {world['old']}"


def _running_exactly(env, repo, digest, arns):
    """A Service that already runs `digest` with exactly the configuration the engine would send."""
    from scripts.release.images import ImageRef
    from scripts.release.targets.apprunner import from_describe, update_request

    live = service(env, digest=digest)
    request = update_request(env, ImageRef.parse(image_ref(digest)), arns, repo.git("rev-parse", "HEAD"), None)
    live["SourceConfiguration"]["ImageRepository"]["ImageConfiguration"] = request["SourceConfiguration"][
        "ImageRepository"
    ]["ImageConfiguration"]
    state = from_describe(live)
    final = update_request(env, ImageRef.parse(image_ref(digest)), arns, repo.git("rev-parse", "HEAD"), state)
    live["SourceConfiguration"]["ImageRepository"]["ImageConfiguration"] = final["SourceConfiguration"][
        "ImageRepository"
    ]["ImageConfiguration"]
    return live


def test_redeploying_the_running_digest_starts_a_deployment(world, repo, staging):
    """After a secret rotation: same digest, same configuration -> start_deployment (App Runner re-reads the
    secrets), not an update_service that would change nothing."""
    arns = create_secrets(staging)
    stub = world["stub"]
    live = _running_exactly(staging, repo, world["new"], arns)
    stub.add_response(
        "list_services",
        {"ServiceSummaryList": [{"ServiceName": staging.service, "ServiceArn": service_arn("staging")}]},
        {"MaxResults": 20},
    )
    stub.add_response("describe_service", {"Service": live}, {"ServiceArn": service_arn("staging")})
    stub.add_response("start_deployment", {"OperationId": OP_ID}, {"ServiceArn": service_arn("staging")})
    stub.add_response(
        "list_operations", operations("SUCCEEDED"), {"ServiceArn": service_arn("staging"), "MaxResults": 20}
    )
    lines = []
    ctx = context(staging, repo, image_ref(world["new"]), world["aws"], redeploy=True)
    assert flows.deploy(ctx, out=lines.append, smoke=smoke_passes) == 0
    assert any(line.startswith("start_deployment: operation") for line in lines)


def test_a_rerun_that_changes_nothing_is_skipped(world, repo, staging):
    """A re-run of the same staging run: same digest, same configuration, no --redeploy -> nothing to do."""
    arns = create_secrets(staging)
    stub = world["stub"]
    stub.add_response(
        "list_services",
        {"ServiceSummaryList": [{"ServiceName": staging.service, "ServiceArn": service_arn("staging")}]},
        {"MaxResults": 20},
    )
    live = _running_exactly(staging, repo, world["new"], arns)
    stub.add_response("describe_service", {"Service": live}, {"ServiceArn": service_arn("staging")})
    lines = []
    ctx = context(staging, repo, image_ref(world["new"]), world["aws"])
    assert flows.deploy(ctx, out=lines.append, smoke=smoke_passes) == 0
    assert lines[-1].endswith("with this exact configuration: nothing to do")
