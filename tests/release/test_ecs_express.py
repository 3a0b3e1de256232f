"""The ECS Express Mode adapter against the real `ecs` service model (botocore's Stubber validates every request
and response): the same paths the App Runner adapter has, with an instant fake clock."""

from __future__ import annotations

import pytest
from botocore.stub import ANY

from scripts.release.images import ImageRef
from scripts.release.targets.base import BUSY, RUNNING, DeployError, DeployFailed
from scripts.release.targets.ecs_express import from_describe
from tests.release.conftest import digest_of, image_ref, secret_arn
from tests.release.express import (
    cluster,
    deployment_arn,
    ecs_arn,
    expect_deployment,
    expect_express,
    expect_update,
    express_service,
    log_group,
    on_ecs,
    revision_arn,
)


@pytest.fixture
def env(staging):
    return on_ecs(staging)


def test_the_deploy_request_is_by_digest_with_secret_arns_and_the_tables_settings(ecs_target, ecs, env):
    """The request the model accepts: image by digest, secrets as full ARNs, roles and units from the
    environment's ecs-express table, the running service's log configuration kept."""
    _, stub = ecs
    expect_express(stub, env)
    current = ecs_target.describe(env.service)
    image = ImageRef.parse(image_ref(digest_of("new")))
    arns = {var: secret_arn(name) for var, name in env.secrets.items()}
    request = ecs_target.update_request(env, image, arns, "a" * 40, current)
    assert request["cpu"] == "1024" and request["memory"] == "2048"
    assert request["executionRoleArn"] == "arn:aws:iam::123456789012:role/mv-os-ecs-execution-staging"
    assert request["taskRoleArn"] == "arn:aws:iam::123456789012:role/mv-os-ecs-task-staging"
    container = request["primaryContainer"]
    assert container["image"].endswith("@" + digest_of("new"))
    assert {s["name"]: s["valueFrom"] for s in container["secrets"]} == arns
    assert all(s["valueFrom"].startswith("arn:aws:secretsmanager:") for s in container["secrets"])
    variables = {e["name"]: e["value"] for e in container["environment"]}
    assert variables["NODE_ENV"] == "staging" and variables["MV_OS_PREVIOUS_IMAGE"] == current.image
    assert variables["PUBLIC_BASE_URL"] == f"https://{env.service}.ecs.us-east-1.on.aws"
    assert not set(variables) & set(env.secrets)
    assert container["awsLogsConfiguration"]["logGroup"] == log_group(env)
    expect_update(stub, env, container["image"], 2, request)
    assert ecs_target.start(request) == revision_arn(env, 2)


def test_a_successful_deployment_is_followed_to_the_end(ecs_target, ecs, env, clock):
    _, stub = ecs
    expect_deployment(stub, env, 2, "PENDING", "IN_PROGRESS", "IN_PROGRESS", "SUCCESSFUL")
    ecs_target.wait_for(ecs_arn(env), revision_arn(env, 2))
    assert clock.sleeps == [2.0, 3.0, 4.5]
    assert any("IN_PROGRESS" in line for line in ecs_target.lines)


@pytest.mark.parametrize(
    ("statuses", "words"),
    [
        (("IN_PROGRESS", "ROLLBACK_IN_PROGRESS", "ROLLBACK_SUCCESSFUL"), "ECS rolled the deployment back"),
        (("ROLLBACK_FAILED",), "rollback FAILED too"),
        (("STOP_REQUESTED", "STOPPED"), "STOPPED before it finished"),
    ],
)
def test_a_rollback_by_ecs_or_a_stop_is_a_failed_deploy(ecs_target, ecs, env, statuses, words):
    _, stub = ecs
    expect_deployment(stub, env, 2, *statuses)
    with pytest.raises(DeployFailed) as err:
        ecs_target.wait_for(ecs_arn(env), revision_arn(env, 2))
    assert err.value.status == statuses[-1] and words in str(err.value)


def test_only_the_deployment_of_our_revision_counts(ecs_target, ecs, env):
    """The previous revision's SUCCESSFUL deployment is on the same page: it must not end the wait."""
    _, stub = ecs
    expect_deployment(stub, env, 2, "IN_PROGRESS", "ROLLBACK_SUCCESSFUL")
    with pytest.raises(DeployFailed):
        ecs_target.wait_for(ecs_arn(env), revision_arn(env, 2))


def test_throttling_is_retried_then_gives_up_with_a_clear_error(ecs_target, ecs, env, clock):
    _, stub = ecs
    stub.add_client_error("list_service_deployments", "ThrottlingException", "Rate exceeded")
    expect_deployment(stub, env, 2, "SUCCESSFUL")
    ecs_target.wait_for(ecs_arn(env), revision_arn(env, 2))
    assert clock.sleeps == [1.0]
    for _ in range(ecs_target.throttle_attempts):
        stub.add_client_error("update_express_gateway_service", "ThrottlingException", "Rate exceeded")
    with pytest.raises(DeployError, match="ECS kept throttling update_express_gateway_service"):
        ecs_target.start({"serviceArn": ecs_arn(env)})


def test_the_wait_is_bounded(ecs_target, ecs, env, clock):
    _, stub = ecs
    ecs_target.timeout = 20
    for _ in range(8):
        stub.add_response(
            "list_service_deployments", {"serviceDeployments": []}, {"cluster": cluster(env), "service": ecs_arn(env)}
        )
    with pytest.raises(DeployError, match="still not listed after") as err:
        ecs_target.wait_for(ecs_arn(env), revision_arn(env, 2))
    assert "it may still finish" in str(err.value)
    assert clock.now <= 20
    stub._queue.clear()  # the loop stopped at its limit; the spare responses are never needed


def test_an_operation_in_progress_is_waited_for_then_reported(ecs_target, ecs, env, clock):
    _, stub = ecs
    expect_express(stub, env, busy=True)
    expect_express(stub, env, lookup=False, busy=True)
    expect_express(stub, env, lookup=False)
    assert ecs_target.wait_until_idle(env.service, 60).status == RUNNING
    assert clock.sleeps == [2.0, 3.0]
    expect_express(stub, env, lookup=False, busy=True)
    assert ecs_target.wait_until_idle(env.service, 1).status == BUSY


def test_an_update_ecs_refuses_is_a_deploy_error(ecs_target, ecs, env):
    _, stub = ecs
    stub.add_client_error(
        "update_express_gateway_service", "ClientException", "The service has a deployment in progress"
    )
    with pytest.raises(DeployError, match="update_express_gateway_service refused: ClientException"):
        ecs_target.start({"serviceArn": ecs_arn(env)})


def test_a_missing_service_is_named(ecs_target, ecs, env):
    _, stub = ecs
    stub.add_response(
        "describe_services",
        {"services": [], "failures": [{"arn": env.service, "reason": "MISSING"}]},
        {"cluster": cluster(env), "services": [env.service]},
    )
    with pytest.raises(DeployError, match=f"ECS service {env.service} does not exist in cluster mv-os-staging"):
        ecs_target.describe(env.service)


def test_a_redeploy_forces_a_new_deployment_and_follows_it(ecs_target, ecs, env):
    """After a secret rotation: same digest, fresh secret values (ECS reads them when a task starts)."""
    _, stub = ecs
    stub.add_response(
        "update_service",
        {"service": {"serviceArn": ecs_arn(env), "currentServiceDeployment": deployment_arn(env, 3)}},
        {"cluster": cluster(env), "service": ecs_arn(env), "forceNewDeployment": True},
    )
    expect_deployment(stub, env, 3, "IN_PROGRESS", "SUCCESSFUL")
    operation = ecs_target.redeploy(ecs_arn(env))
    assert operation == deployment_arn(env, 3)
    ecs_target.wait_for(ecs_arn(env), operation)


def test_the_running_configuration_is_read_for_the_audit(env):
    state = from_describe(express_service(env, digest=digest_of("running"), variables={"LOG_LEVEL": "INFO"}), False)
    assert state.status == RUNNING and state.image == image_ref(digest_of("running"))
    assert state.variables["NODE_ENV"] == "staging" and state.variables["LOG_LEVEL"] == "INFO"
    assert state.secrets == {var: secret_arn(name) for var, name in env.secrets.items()}
    assert state.auto_deploy is False
    assert state.https_url == f"https://{env.service}.ecs.us-east-1.on.aws"
    tagged = from_describe(express_service(env, image=f"{image_ref(digest_of('x')).split('@')[0]}:latest"), False)
    assert tagged.auto_deploy is True, "an image by tag would let any new deployment run whatever was pushed"
    assert from_describe(express_service(env, status="DRAINING"), False).status == "DRAINING"


def test_the_rollback_request_puts_back_what_ran(ecs_target, ecs, env):
    _, stub = ecs
    expect_express(stub, env, digest=digest_of("old"), variables={"LOG_LEVEL": "DEBUG"})
    previous = ecs_target.describe(env.service)
    request = ecs_target.rollback_request(previous)
    assert request["primaryContainer"]["image"] == image_ref(digest_of("old"))
    assert ecs_target.view(request).configuration == previous.image_configuration
    expect_update(stub, env, previous.image, 5, {"serviceArn": ecs_arn(env), "primaryContainer": ANY})
    assert ecs_target.start(request) == revision_arn(env, 5)
