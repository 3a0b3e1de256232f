"""The App Runner adapter of the deploy-target port (boto3 `apprunner` client).

App Runner has no waiters and no paginators in botocore, so the loops are here: find the service by name
(`list_services`), wait while `Status == OPERATION_IN_PROGRESS`, and poll `list_operations` for the one
`OperationId` that `update_service` returned.  `SUCCEEDED` is the only success.  AWS closed App Runner to new
customers on 2026-04-30 (MV-OS is an existing one); new environments use targets/ecs_express.py.
"""

from __future__ import annotations

import copy
from typing import Any

from scripts.release.environments import Environment
from scripts.release.images import ImageRef
from scripts.release.summary import log_group
from scripts.release.targets.base import DeployError, Polling, RequestView, ServiceState, image_configuration

SUCCEEDED = "SUCCEEDED"
IN_FLIGHT = ("PENDING", "IN_PROGRESS", "ROLLBACK_IN_PROGRESS")
FAILURES = {
    "FAILED": "the operation FAILED; App Runner rolled back and the previous version keeps serving",
    "ROLLBACK_SUCCEEDED": "App Runner rolled the deploy back (ROLLBACK_SUCCEEDED): the new version never "
    "became healthy and the previous version keeps serving",
    "ROLLBACK_FAILED": "the deploy failed and App Runner's rollback FAILED too (ROLLBACK_FAILED): the service "
    "needs attention now",
}


def from_describe(service: dict[str, Any]) -> ServiceState:
    """A `describe_service` Service as the engine's ServiceState."""
    source = service.get("SourceConfiguration", {})
    repo = source.get("ImageRepository", {})
    image_config = repo.get("ImageConfiguration", {})
    return ServiceState(
        arn=service["ServiceArn"],
        name=service["ServiceName"],
        status=service["Status"],
        url=service.get("ServiceUrl", ""),
        image=repo.get("ImageIdentifier", ""),
        auto_deploy=source.get("AutoDeploymentsEnabled"),
        variables=dict(image_config.get("RuntimeEnvironmentVariables", {})),
        secrets=dict(image_config.get("RuntimeEnvironmentSecrets", {})),
        access_role_arn=source.get("AuthenticationConfiguration", {}).get("AccessRoleArn"),
        instance_role_arn=service.get("InstanceConfiguration", {}).get("InstanceRoleArn"),
        image_configuration=copy.deepcopy(image_config),
        log_group=log_group(service["ServiceArn"]),
    )


def update_request(
    env: Environment,
    image: ImageRef,
    secret_arns: dict[str, str],
    git_sha: str,
    current: ServiceState | None,
) -> dict[str, Any]:
    """The exact `update_service` request for deploying `image` to `env` (printed by `plan`)."""
    image_config = image_configuration(env, image, secret_arns, git_sha, current)
    source: dict[str, Any] = {
        "ImageRepository": {
            "ImageIdentifier": image.ref,
            "ImageRepositoryType": "ECR",
            "ImageConfiguration": image_config,
        },
        # An ECR push must never deploy by itself: that would skip every gate.
        "AutoDeploymentsEnabled": False,
    }
    settings = env.settings
    instance: dict[str, Any] = {"Cpu": settings["cpu"], "Memory": settings["memory"]}
    if current is not None and current.access_role_arn:
        source["AuthenticationConfiguration"] = {"AccessRoleArn": current.access_role_arn}
    if current is not None and current.instance_role_arn:
        # The instance role is what lets App Runner read the secrets; keep it.
        instance["InstanceRoleArn"] = current.instance_role_arn
    return {
        "ServiceArn": current.arn if current is not None else f"<arn of {env.service}>",
        "SourceConfiguration": source,
        "InstanceConfiguration": instance,
        "HealthCheckConfiguration": {
            "Protocol": "HTTP",
            "Path": env.health_check_path,
            "Interval": 10,
            "Timeout": 5,
            "HealthyThreshold": 1,
            "UnhealthyThreshold": 5,
        },
    }


def view(request: dict[str, Any]) -> RequestView:
    source = request.get("SourceConfiguration", {})
    repo = source.get("ImageRepository", {})
    health = request.get("HealthCheckConfiguration", {})
    return RequestView(
        image=repo.get("ImageIdentifier", ""),
        configuration=repo.get("ImageConfiguration", {}),
        health_protocol=health.get("Protocol"),
        health_path=health.get("Path"),
        auto_deploy=source.get("AutoDeploymentsEnabled"),
    )


def is_redeploy(request: dict[str, Any], current: ServiceState) -> bool:
    """The request changes nothing App Runner would see (same image, same variables and secrets): updating the
    service would not start a deployment, so `start_deployment` is used instead.  That is what a secret rotation
    needs, because App Runner reads secret values only when a deployment starts."""
    repo = request["SourceConfiguration"]["ImageRepository"]
    config = repo.get("ImageConfiguration", {})
    live = current.image_configuration
    return (
        repo["ImageIdentifier"] == current.image
        and current.auto_deploy is False
        and config.get("RuntimeEnvironmentVariables", {}) == live.get("RuntimeEnvironmentVariables", {})
        and config.get("RuntimeEnvironmentSecrets", {}) == live.get("RuntimeEnvironmentSecrets", {})
        and str(config.get("Port")) == str(live.get("Port"))
        and config.get("StartCommand") == live.get("StartCommand")
    )


def rollback_request(previous: ServiceState) -> dict[str, Any]:
    """Put back exactly what ran before (image and its whole ImageConfiguration), auto-deploy still off."""
    source: dict[str, Any] = {
        "ImageRepository": {
            "ImageIdentifier": previous.image,
            "ImageRepositoryType": "ECR",
            "ImageConfiguration": copy.deepcopy(previous.image_configuration),
        },
        "AutoDeploymentsEnabled": False,
    }
    if previous.access_role_arn:
        source["AuthenticationConfiguration"] = {"AccessRoleArn": previous.access_role_arn}
    return {"ServiceArn": previous.arn, "SourceConfiguration": source}


class AppRunnerShape:
    """The App Runner request shape, shared by the real adapter and the rehearsal's local stand-in."""

    name = "apprunner"
    update_call = "update_service"

    def update_request(self, env, image, secret_arns, git_sha, current):
        return update_request(env, image, secret_arns, git_sha, current)

    def view(self, request: dict[str, Any]) -> RequestView:
        return view(request)

    def is_redeploy(self, request: dict[str, Any], current: ServiceState) -> bool:
        return is_redeploy(request, current)

    def rollback_request(self, previous: ServiceState) -> dict[str, Any]:
        return rollback_request(previous)

    def recorded_request(self, state: ServiceState, image: str, configuration: dict[str, Any], health_path: str):
        """The request that runs `image` with the configuration production ran it with (not today's variables)."""
        live = ServiceState(**{**state.__dict__, "image": image, "image_configuration": copy.deepcopy(configuration)})
        return {**rollback_request(live), "HealthCheckConfiguration": {"Protocol": "HTTP", "Path": health_path}}

    def log_group(self, state: ServiceState) -> str | None:
        return state.log_group or log_group(state.arn)


class AppRunnerTarget(AppRunnerShape, Polling):
    """`DeployTarget` on AWS App Runner.  `client` is `boto3.client("apprunner")` (or a Stubber'd one)."""

    label = "App Runner"

    def service_arn(self, service_name: str) -> str:
        if service_name in self._arns:
            return self._arns[service_name]
        token = None
        while True:
            kwargs = {"MaxResults": 20, **({"NextToken": token} if token else {})}
            page = self._call("list_services", **kwargs)
            for summary in page.get("ServiceSummaryList", []):
                if summary.get("ServiceName") == service_name:
                    self._arns[service_name] = summary["ServiceArn"]
                    return summary["ServiceArn"]
            token = page.get("NextToken")
            if not token:
                raise DeployError(f"App Runner service {service_name} does not exist in this account/region")

    def describe(self, service_name: str) -> ServiceState:
        arn = self.service_arn(service_name)
        return from_describe(self._call("describe_service", ServiceArn=arn)["Service"])

    def start(self, request: dict[str, Any]) -> str:
        return self._refused("update_service", **request)["OperationId"]

    def redeploy(self, service_arn: str) -> str:
        """Deploy the configured image again (`start_deployment`): fresh secret values, same digest."""
        return self._refused("start_deployment", ServiceArn=service_arn)["OperationId"]

    def operation_status(self, service_arn: str, operation_id: str) -> str | None:
        token = None
        for _ in range(10):  # newest first: the operation is on the first page unless it is very busy
            kwargs = {"ServiceArn": service_arn, "MaxResults": 20, **({"NextToken": token} if token else {})}
            page = self._call("list_operations", **kwargs)
            for summary in page.get("OperationSummaryList", []):
                if summary.get("Id") == operation_id:
                    return summary.get("Status")
            token = page.get("NextToken")
            if not token:
                return None
        return None

    def wait_for(self, service_arn: str, operation_id: str) -> None:
        """Poll that one operation until it ends.  Raises DeployFailed / DeployError; returns on SUCCEEDED."""
        self._wait(
            operation_id,
            lambda: self.operation_status(service_arn, operation_id),
            SUCCEEDED,
            FAILURES,
            IN_FLIGHT,
            "the App Runner console",
        )
