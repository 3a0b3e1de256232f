"""App Runner target, against a real boto3 client under botocore's Stubber (shapes validated by the model):
the loops that botocore does not provide (no waiters, no paginators), with an instant fake clock."""

from __future__ import annotations

import pytest
from botocore.stub import ANY

from scripts.release.images import ImageRef
from scripts.release.targets.apprunner import from_describe, rollback_request, update_request
from scripts.release.targets.base import DeployError, DeployFailed
from tests.release.conftest import (
    OP_ID,
    digest_of,
    expect_service,
    image_ref,
    operations,
    secret_arn,
    service,
    service_arn,
)

OTHER_OP = "0b1c2d3e-aaaa-4bbb-8ccc-dddddddddddd"


def poll(stub, env, *statuses):
    for status in statuses:
        stub.add_response(
            "list_operations", operations(status), {"ServiceArn": service_arn(env.name), "MaxResults": 20}
        )


def test_succeeded_is_success(target, apprunner, staging):
    _, stub = apprunner
    poll(stub, staging, "SUCCEEDED")
    target.wait_for(service_arn("staging"), OP_ID)
    assert "SUCCEEDED" in target.lines[-1]


def test_in_progress_then_succeeded_polls_with_capped_backoff(target, apprunner, staging, clock):
    _, stub = apprunner
    poll(stub, staging, "PENDING", *["IN_PROGRESS"] * 6, "SUCCEEDED")
    target.wait_for(service_arn("staging"), OP_ID)
    assert len(clock.sleeps) == 7
    assert clock.sleeps == sorted(clock.sleeps)  # backs off
    assert max(clock.sleeps) <= 10  # never more than 10 s between polls
    # progress lines carry the elapsed time
    assert target.lines[1].startswith("[") and "s] operation" in target.lines[1]
    assert target.lines[-1].endswith("SUCCEEDED")


@pytest.mark.parametrize(
    ("status", "words"),
    [
        ("ROLLBACK_SUCCEEDED", "rolled the deploy back"),
        ("FAILED", "rolled back"),
        ("ROLLBACK_FAILED", "rollback FAILED"),
    ],
)
def test_every_other_end_state_is_a_failure(target, apprunner, staging, status, words):
    _, stub = apprunner
    poll(stub, staging, "IN_PROGRESS", "ROLLBACK_IN_PROGRESS", status)
    with pytest.raises(DeployFailed) as err:
        target.wait_for(service_arn("staging"), OP_ID)
    assert err.value.status == status
    assert words in str(err.value)


def test_only_our_operation_counts(target, apprunner, staging):
    _, stub = apprunner
    listing = operations("FAILED", op_id=OTHER_OP)
    listing["OperationSummaryList"] += operations("SUCCEEDED")["OperationSummaryList"]
    stub.add_response("list_operations", listing, {"ServiceArn": service_arn("staging"), "MaxResults": 20})
    target.wait_for(service_arn("staging"), OP_ID)


def test_operation_on_a_later_page_is_found(target, apprunner, staging):
    _, stub = apprunner
    first = operations("SUCCEEDED", op_id=OTHER_OP)
    first["NextToken"] = "page-2"
    stub.add_response("list_operations", first, {"ServiceArn": service_arn("staging"), "MaxResults": 20})
    stub.add_response(
        "list_operations",
        operations("ROLLBACK_SUCCEEDED"),
        {"ServiceArn": service_arn("staging"), "MaxResults": 20, "NextToken": "page-2"},
    )
    with pytest.raises(DeployFailed):
        target.wait_for(service_arn("staging"), OP_ID)


def test_throttling_is_retried(target, apprunner, staging, clock):
    _, stub = apprunner
    for _ in range(3):
        stub.add_client_error("list_operations", service_error_code="ThrottlingException", http_status_code=429)
    poll(stub, staging, "SUCCEEDED")
    target.wait_for(service_arn("staging"), OP_ID)
    assert len(clock.sleeps) == 3
    assert any("throttled" in line for line in target.lines)


def test_endless_throttling_gives_up_with_a_clear_error(target, apprunner, staging):
    _, stub = apprunner
    target.throttle_attempts = 3
    for _ in range(3):
        stub.add_client_error("list_operations", service_error_code="ThrottlingException", http_status_code=429)
    with pytest.raises(DeployError, match="kept throttling list_operations"):
        target.wait_for(service_arn("staging"), OP_ID)


def test_timeout_is_bounded(target, apprunner, staging, clock):
    _, stub = apprunner
    target.timeout = 60
    poll(stub, staging, *["IN_PROGRESS"] * 9)
    with pytest.raises(DeployError, match=r"still IN_PROGRESS after \d+s \(limit 60s\)"):
        target.wait_for(service_arn("staging"), OP_ID)
    assert clock.now <= 60


def test_update_service_refused_while_another_operation_runs(target, apprunner, staging):
    _, stub = apprunner
    stub.add_client_error(
        "update_service", service_error_code="InvalidStateException", service_message="operation in progress"
    )
    with pytest.raises(DeployError, match="InvalidStateException"):
        target.start({"ServiceArn": service_arn("staging")})


def test_wait_until_idle_waits_then_returns_running(target, apprunner, staging, clock):
    _, stub = apprunner
    expect_service(stub, staging, status="OPERATION_IN_PROGRESS")
    stub.add_response(
        "describe_service",
        {"Service": service(staging, status="OPERATION_IN_PROGRESS")},
        {"ServiceArn": service_arn("staging")},
    )
    stub.add_response("describe_service", {"Service": service(staging)}, {"ServiceArn": service_arn("staging")})
    state = target.wait_until_idle(staging.service, budget=120)
    assert state.status == "RUNNING"
    assert len(clock.sleeps) == 2


def test_the_update_request_the_model_accepts(target, apprunner, staging):
    """The exact request the engine sends passes botocore's parameter validation (Stubber checks it)."""
    _, stub = apprunner
    current = from_describe(service(staging))
    image = ImageRef.parse(image_ref(digest_of("new")))
    arns = {var: secret_arn(name) for var, name in staging.secrets.items()}
    request = update_request(staging, image, arns, "a" * 40, current)
    stub.add_response("update_service", {"Service": service(staging), "OperationId": OP_ID}, request)
    assert target.start(request) == OP_ID
    variables = request["SourceConfiguration"]["ImageRepository"]["ImageConfiguration"]["RuntimeEnvironmentVariables"]
    assert variables["NODE_ENV"] == "staging"
    assert variables["IMAGE_DIGEST"] == digest_of("new")
    assert variables["MV_OS_PREVIOUS_IMAGE"] == image_ref(digest_of("previous"))
    assert request["SourceConfiguration"]["AutoDeploymentsEnabled"] is False
    assert request["HealthCheckConfiguration"]["Path"] == "/readyz"
    assert request["InstanceConfiguration"]["InstanceRoleArn"] == current.instance_role_arn


def test_the_rollback_request_puts_back_what_ran(target, apprunner, production):
    _, stub = apprunner
    previous = from_describe(service(production, digest=digest_of("old")))
    stub.add_response(
        "update_service",
        {"Service": service(production), "OperationId": OP_ID},
        {
            "ServiceArn": service_arn("production"),
            "SourceConfiguration": {
                "ImageRepository": {
                    "ImageIdentifier": image_ref(digest_of("old")),
                    "ImageRepositoryType": "ECR",
                    "ImageConfiguration": ANY,
                },
                "AutoDeploymentsEnabled": False,
                "AuthenticationConfiguration": ANY,
            },
        },
    )
    assert target.start(rollback_request(previous)) == OP_ID
