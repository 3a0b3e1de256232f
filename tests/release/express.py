"""ECS Express Mode shapes for the Stubber'd `ecs` client: the responses the real service model describes, built
from an environment switched to `target = "ecs-express"` exactly as env/environments.toml would switch it."""

from __future__ import annotations

import dataclasses
import datetime as dt

from botocore.stub import Stubber

from scripts.release.targets.ecs_express import IN_FLIGHT
from tests.release.conftest import ACCOUNT, REGION, digest_of, image_ref, secret_arn

NOW = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def on_ecs(env):
    """The environment with only its `target` switched (its ecs-express table comes from environments.toml)."""
    return dataclasses.replace(env, target="ecs-express")


def cluster(env) -> str:
    return env.targets["ecs-express"]["cluster"]


def ecs_arn(env) -> str:
    return f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/{cluster(env)}/{env.service}"


def revision_arn(env, n: int) -> str:
    return f"arn:aws:ecs:{REGION}:{ACCOUNT}:service-revision/{cluster(env)}/{env.service}/{4980306466373577000 + n}"


def deployment_arn(env, n: int) -> str:
    return f"arn:aws:ecs:{REGION}:{ACCOUNT}:service-deployment/{cluster(env)}/{env.service}/dep{n:04d}"


def log_group(env) -> str:
    return f"/aws/ecs/{cluster(env)}/{env.service}"


def express_service(
    env,
    *,
    digest: str | None = None,
    image: str | None = None,
    node_env: str | None = None,
    secrets: dict[str, str] | None = None,
    variables: dict[str, str] | None = None,
    status: str = "ACTIVE",
    revision: int = 1,
) -> dict:
    """A `describe_express_gateway_service` service running one active configuration."""
    environment = {"NODE_ENV": node_env or env.node_env, "GIT_SHA": "0" * 40, **(variables or {})}
    secrets = secrets if secrets is not None else {var: secret_arn(name) for var, name in env.secrets.items()}
    return {
        "cluster": cluster(env),
        "serviceName": env.service,
        "serviceArn": ecs_arn(env),
        "infrastructureRoleArn": f"arn:aws:iam::{ACCOUNT}:role/mv-os-ecs-infrastructure",
        "status": {"statusCode": status},
        "currentDeployment": deployment_arn(env, revision),
        "activeConfigurations": [
            {
                "serviceRevisionArn": revision_arn(env, revision),
                "executionRoleArn": f"arn:aws:iam::{ACCOUNT}:role/mv-os-ecs-execution-{env.name}",
                "taskRoleArn": f"arn:aws:iam::{ACCOUNT}:role/mv-os-ecs-task-{env.name}",
                "cpu": "1024",
                "memory": "2048",
                "healthCheckPath": "/readyz",
                "primaryContainer": {
                    "image": image or image_ref(digest or digest_of("previous")),
                    "containerPort": 8080,
                    "awsLogsConfiguration": {"logGroup": log_group(env), "logStreamPrefix": "ecs"},
                    "environment": [{"name": k, "value": v} for k, v in environment.items()],
                    "secrets": [{"name": k, "valueFrom": v} for k, v in secrets.items()],
                },
                "ingressPaths": [{"accessType": "PUBLIC", "endpoint": f"{env.service}.ecs.{REGION}.on.aws"}],
                "createdAt": NOW,
            }
        ],
        "createdAt": NOW,
        "updatedAt": NOW,
    }


def deployments(env, *pairs: tuple[int, str]) -> dict:
    """A list_service_deployments page: (revision number, status) per deployment, newest first."""
    return {
        "serviceDeployments": [
            {
                "serviceDeploymentArn": deployment_arn(env, n),
                "serviceArn": ecs_arn(env),
                "targetServiceRevisionArn": revision_arn(env, n),
                "status": status,
                "createdAt": NOW,
            }
            for n, status in pairs
        ]
    }


def expect_express(stub: Stubber, env, *, lookup: bool = True, busy: bool = False, **kwargs) -> None:
    """describe: the name -> ARN lookup (once per target), the service, and whether a deployment is in flight."""
    if lookup:
        stub.add_response(
            "describe_services",
            {"services": [{"serviceArn": ecs_arn(env), "serviceName": env.service, "status": "ACTIVE"}]},
            {"cluster": cluster(env), "services": [env.service]},
        )
    stub.add_response(
        "describe_express_gateway_service", {"service": express_service(env, **kwargs)}, {"serviceArn": ecs_arn(env)}
    )
    stub.add_response(
        "list_service_deployments",
        deployments(env, (9, "IN_PROGRESS")) if busy else {"serviceDeployments": []},
        {"cluster": cluster(env), "service": ecs_arn(env), "status": list(IN_FLIGHT)},
    )


def expect_update(stub: Stubber, env, image: str, revision: int, expected: dict | None = None) -> None:
    stub.add_response(
        "update_express_gateway_service",
        {
            "service": {
                "serviceArn": ecs_arn(env),
                "cluster": cluster(env),
                "serviceName": env.service,
                "status": {"statusCode": "ACTIVE"},
                "targetConfiguration": {"serviceRevisionArn": revision_arn(env, revision)},
            }
        },
        expected,
    )


def expect_deployment(stub: Stubber, env, revision: int, *statuses: str) -> None:
    for status in statuses:
        stub.add_response(
            "list_service_deployments",
            deployments(env, (revision, status), (revision - 1, "SUCCESSFUL")),
            {"cluster": cluster(env), "service": ecs_arn(env)},
        )
