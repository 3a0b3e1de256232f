"""The ECS Express Mode adapter of the deploy-target port (boto3 `ecs` client).

An Express service is an ECS service with a load balancer, scaling and a URL that ECS manages.  The engine finds it
by name in the environment's cluster (`describe_services`), reads its running configuration with
`describe_express_gateway_service` (the newest active configuration), deploys with
`update_express_gateway_service` (image by digest, secrets by full ARN) and follows the ECS service deployment
that targets the new service revision (`list_service_deployments`) until it ends.  `SUCCESSFUL` is the only
success: a deployment ECS rolled back (`ROLLBACK_SUCCESSFUL`, the circuit breaker) or stopped is a failure, as
App Runner's `ROLLBACK_SUCCEEDED` is.  A redeploy of what runs (fresh secret values after a rotation) is
`update_service(forceNewDeployment=True)`.
"""

from __future__ import annotations

import shlex
from typing import Any

from scripts.release.environments import Environment
from scripts.release.images import ImageRef
from scripts.release.targets.base import (
    BUSY,
    RUNNING,
    DeployError,
    Polling,
    RequestView,
    ServiceState,
    image_configuration,
)

SUCCESSFUL = "SUCCESSFUL"
IN_FLIGHT = ("PENDING", "IN_PROGRESS", "ROLLBACK_REQUESTED", "ROLLBACK_IN_PROGRESS", "STOP_REQUESTED")
FAILURES = {
    "ROLLBACK_SUCCESSFUL": "ECS rolled the deployment back (ROLLBACK_SUCCESSFUL): the new revision never became "
    "healthy and the previous one keeps serving",
    "ROLLBACK_FAILED": "the deployment failed and ECS's rollback FAILED too (ROLLBACK_FAILED): the service needs "
    "attention now",
    "STOPPED": "the deployment was STOPPED before it finished; the previous revision keeps serving",
}


def configuration_of(container: dict[str, Any]) -> dict[str, Any]:
    """An Express primary container as the engine's target-independent runtime configuration."""
    config: dict[str, Any] = {
        "Port": str(container.get("containerPort", "")),
        "RuntimeEnvironmentVariables": {e["name"]: e["value"] for e in container.get("environment", [])},
        "RuntimeEnvironmentSecrets": {s["name"]: s["valueFrom"] for s in container.get("secrets", [])},
    }
    if container.get("command"):
        config["StartCommand"] = shlex.join(container["command"])
    return config


def container_of(image: str, configuration: dict[str, Any], logs: dict[str, Any] | None) -> dict[str, Any]:
    """The primary container that runs `image` with `configuration` (sorted, so equal configurations are equal
    requests)."""
    container: dict[str, Any] = {
        "image": image,
        "containerPort": int(configuration["Port"]),
        "environment": [
            {"name": k, "value": v} for k, v in sorted(configuration.get("RuntimeEnvironmentVariables", {}).items())
        ],
        "secrets": [
            {"name": k, "valueFrom": v} for k, v in sorted(configuration.get("RuntimeEnvironmentSecrets", {}).items())
        ],
    }
    if configuration.get("StartCommand"):
        container["command"] = shlex.split(configuration["StartCommand"])
    if logs:
        container["awsLogsConfiguration"] = dict(logs)
    return container


def from_describe(service: dict[str, Any], busy: bool) -> ServiceState:
    """A `describe_express_gateway_service` service as the engine's ServiceState.  `busy`: a service deployment
    is in flight."""
    configs = sorted(service.get("activeConfigurations", []), key=lambda c: str(c.get("createdAt", "")))
    live = configs[-1] if configs else {}
    container = live.get("primaryContainer", {})
    code = service.get("status", {}).get("statusCode", "")
    url = next((p["endpoint"] for p in live.get("ingressPaths", []) if p.get("accessType") == "PUBLIC"), "")
    image = container.get("image", "")
    logs = container.get("awsLogsConfiguration")
    return ServiceState(
        arn=service["serviceArn"],
        name=service.get("serviceName", ""),
        status=(BUSY if busy else RUNNING) if code == "ACTIVE" else code,
        url=url,
        image=image,
        # ECS has no deploy-on-push; the one way around the gates is an image by tag, which any new deployment
        # (scaling, a forced redeploy) would resolve to whatever the tag points at then.
        auto_deploy="@sha256:" not in image,
        variables={e["name"]: e["value"] for e in container.get("environment", [])},
        secrets={s["name"]: s["valueFrom"] for s in container.get("secrets", [])},
        instance_role_arn=live.get("taskRoleArn"),
        access_role_arn=live.get("executionRoleArn"),
        image_configuration=configuration_of(container) if container else {},
        log_group=(logs or {}).get("logGroup"),
        extra={"awsLogsConfiguration": logs} if logs else {},
    )


class EcsExpressShape:
    """The ECS Express Mode request shape (`update_express_gateway_service`)."""

    name = "ecs-express"
    update_call = "update_express_gateway_service"

    def update_request(
        self, env: Environment, image: ImageRef, secret_arns: dict[str, str], git_sha: str, current: ServiceState | None
    ) -> dict[str, Any]:
        """The exact request for deploying `image` to `env` (printed by `plan`).  Roles are named in
        env/environments.toml and live in the image's account (the aws-credentials gate checks it is the role's)."""
        settings = env.settings
        configuration = image_configuration(env, image, secret_arns, git_sha, current)
        logs = current.extra.get("awsLogsConfiguration") if current is not None else None
        return {
            "serviceArn": current.arn if current is not None else f"<arn of {env.service}>",
            "executionRoleArn": f"arn:aws:iam::{image.account}:role/{settings['execution_role']}",
            "taskRoleArn": f"arn:aws:iam::{image.account}:role/{settings['task_role']}",
            "healthCheckPath": env.health_check_path,
            "primaryContainer": container_of(image.ref, configuration, logs),
            "cpu": settings["cpu"],
            "memory": settings["memory"],
        }

    def view(self, request: dict[str, Any]) -> RequestView:
        container = request.get("primaryContainer", {})
        image = container.get("image", "")
        return RequestView(
            image=image,
            configuration=configuration_of(container) if container else {},
            # The Express load balancer health-checks healthCheckPath over HTTP.
            health_protocol="HTTP" if request.get("healthCheckPath") else None,
            health_path=request.get("healthCheckPath"),
            auto_deploy="@sha256:" not in image,
        )

    def is_redeploy(self, request: dict[str, Any], current: ServiceState) -> bool:
        """Same image and the same runtime configuration: an update would start no deployment, so a forced new
        deployment is used instead (a secret rotation needs one: ECS reads secret values when a task starts)."""
        sent = self.view(request)
        return sent.image == current.image and sent.configuration == current.image_configuration

    def rollback_request(self, previous: ServiceState) -> dict[str, Any]:
        """Put back exactly what ran before: the image and its whole runtime configuration."""
        logs = previous.extra.get("awsLogsConfiguration")
        return {
            "serviceArn": previous.arn,
            "primaryContainer": container_of(previous.image, previous.image_configuration, logs),
        }

    def recorded_request(self, state: ServiceState, image: str, configuration: dict[str, Any], health_path: str):
        """The request that runs `image` with the configuration production ran it with (not today's variables)."""
        logs = state.extra.get("awsLogsConfiguration")
        return {
            "serviceArn": state.arn,
            "healthCheckPath": health_path,
            "primaryContainer": container_of(image, configuration, logs),
        }

    def log_group(self, state: ServiceState) -> str | None:
        return state.log_group


class EcsExpressTarget(EcsExpressShape, Polling):
    """`DeployTarget` on ECS Express Mode.  `client` is `boto3.client("ecs")` (or a Stubber'd one)."""

    label = "ECS"

    def __init__(self, client, *, cluster: str, **kwargs):
        super().__init__(client, **kwargs)
        self.cluster = cluster

    def service_arn(self, service_name: str) -> str:
        if service_name not in self._arns:
            found = self._call("describe_services", cluster=self.cluster, services=[service_name])
            services = [s for s in found.get("services", []) if s.get("status") != "INACTIVE"]
            if not services:
                raise DeployError(f"ECS service {service_name} does not exist in cluster {self.cluster}")
            self._arns[service_name] = services[0]["serviceArn"]
        return self._arns[service_name]

    def _deployments(self, service_arn: str, **filters) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        token = None
        for _ in range(10):  # bounded; newest first
            kwargs = {
                "cluster": self.cluster,
                "service": service_arn,
                **filters,
                **({"nextToken": token} if token else {}),
            }
            page = self._call("list_service_deployments", **kwargs)
            found.extend(page.get("serviceDeployments", []))
            token = page.get("nextToken")
            if not token:
                break
        return found

    def describe(self, service_name: str) -> ServiceState:
        arn = self.service_arn(service_name)
        service = self._call("describe_express_gateway_service", serviceArn=arn)["service"]
        busy = bool(self._deployments(arn, status=list(IN_FLIGHT)))
        return from_describe(service, busy)

    def start(self, request: dict[str, Any]) -> str:
        """Returns the new service revision's ARN: the deployment that targets it is the one to follow."""
        response = self._refused("update_express_gateway_service", **request)
        revision = response.get("service", {}).get("targetConfiguration", {}).get("serviceRevisionArn")
        if not revision:
            raise DeployError("update_express_gateway_service started no new service revision")
        return revision

    def redeploy(self, service_arn: str) -> str:
        """Start a new deployment of what runs (fresh secret values, same digest)."""
        response = self._refused("update_service", cluster=self.cluster, service=service_arn, forceNewDeployment=True)
        deployment = response.get("service", {}).get("currentServiceDeployment")
        if not deployment:
            raise DeployError("update_service(forceNewDeployment) started no service deployment")
        return deployment

    def deployment_status(self, service_arn: str, operation_id: str) -> str | None:
        for brief in self._deployments(service_arn):
            if operation_id in (brief.get("serviceDeploymentArn"), brief.get("targetServiceRevisionArn")):
                return brief.get("status")
        return None

    def wait_for(self, service_arn: str, operation_id: str) -> None:
        """Follow the deployment until it ends.  Raises DeployFailed / DeployError; returns on SUCCESSFUL."""
        self._wait(
            operation_id,
            lambda: self.deployment_status(service_arn, operation_id),
            SUCCESSFUL,
            FAILURES,
            IN_FLIGHT,
            "the ECS console (the service's Deployments tab)",
        )
