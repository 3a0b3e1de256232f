"""The deploy target: a small interface, and its AWS App Runner implementation (boto3 `apprunner` client).

App Runner has no waiters and no paginators in botocore, so the loops are here: find the service by name
(`list_services`), wait while `Status == OPERATION_IN_PROGRESS`, and poll `list_operations` for the one
`OperationId` that `update_service` returned.  `SUCCEEDED` is the only success.  Throttling is retried with
backoff; every wait is bounded.  Sleep and clock are injected, so tests run the loops instantly.

AWS closed App Runner to new customers on 2026-04-30 (MV-OS is an existing one).  Everything the engine needs
from a target is `DeployTarget`, so ECS Express Mode can become a second implementation later.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from botocore.exceptions import ClientError

from scripts.release.environments import Environment
from scripts.release.images import ImageRef

SUCCEEDED = "SUCCEEDED"
IN_FLIGHT = ("PENDING", "IN_PROGRESS", "ROLLBACK_IN_PROGRESS")
FAILURES = {
    "FAILED": "the operation FAILED; App Runner rolled back and the previous version keeps serving",
    "ROLLBACK_SUCCEEDED": "App Runner rolled the deploy back (ROLLBACK_SUCCEEDED): the new version never "
    "became healthy and the previous version keeps serving",
    "ROLLBACK_FAILED": "the deploy failed and App Runner's rollback FAILED too (ROLLBACK_FAILED): the service "
    "needs attention now",
}
THROTTLING = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "ThrottledException",
        "RequestThrottled",
        "SlowDown",
    }
)
# Variables the engine itself sets on every deploy (besides the environment's own `variables`).
ENGINE_VARIABLES = (
    "NODE_ENV",
    "GIT_SHA",
    "IMAGE_DIGEST",
    "PUBLIC_BASE_URL",
    "MV_OS_PREVIOUS_IMAGE",
    "MV_OS_PREVIOUS_GIT_SHA",
)


class DeployError(Exception):
    """A deploy could not start, failed, or timed out.  The message says what happened and what runs now."""


class DeployFailed(DeployError):
    def __init__(self, status: str, operation_id: str):
        self.status = status
        self.operation_id = operation_id
        super().__init__(f"operation {operation_id}: {FAILURES[status]}")


@dataclass(frozen=True)
class ServiceState:
    """What a service runs now, from `describe_service`."""

    arn: str
    name: str
    status: str
    url: str
    image: str
    auto_deploy: bool | None
    variables: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    access_role_arn: str | None = None
    instance_role_arn: str | None = None
    image_configuration: dict[str, Any] = field(default_factory=dict)

    @property
    def https_url(self) -> str:
        return self.url if self.url.startswith("http") else f"https://{self.url}"

    @classmethod
    def from_describe(cls, service: dict[str, Any]) -> ServiceState:
        source = service.get("SourceConfiguration", {})
        repo = source.get("ImageRepository", {})
        image_config = repo.get("ImageConfiguration", {})
        return cls(
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
        )


class DeployTarget(Protocol):
    """What the release engine needs from a place that runs the image."""

    def describe(self, service_name: str) -> ServiceState: ...

    def wait_until_idle(self, service_name: str, budget: float) -> ServiceState: ...

    def start(self, request: dict[str, Any]) -> str: ...

    def redeploy(self, service_arn: str) -> str: ...

    def wait_for(self, service_arn: str, operation_id: str) -> None: ...


def update_request(
    env: Environment,
    image: ImageRef,
    secret_arns: dict[str, str],
    git_sha: str,
    current: ServiceState | None,
) -> dict[str, Any]:
    """The exact `update_service` request for deploying `image` to `env` (printed by `plan`)."""
    variables = dict(env.variables)
    variables.update(NODE_ENV=env.node_env, GIT_SHA=git_sha, IMAGE_DIGEST=image.digest)
    if current is not None:
        if current.url:
            variables["PUBLIC_BASE_URL"] = current.https_url
        if current.image and current.image != image.ref:
            # What ran before this deploy: `nox -s rollback -- <env>` (without --to) goes back to it.
            variables["MV_OS_PREVIOUS_IMAGE"] = current.image
            variables["MV_OS_PREVIOUS_GIT_SHA"] = current.variables.get("GIT_SHA", "unknown")
        elif current.image == image.ref:
            # A redeploy of what runs (e.g. after a secret rotation) keeps the rollback target it had.
            for name in ("MV_OS_PREVIOUS_IMAGE", "MV_OS_PREVIOUS_GIT_SHA"):
                if name in current.variables:
                    variables[name] = current.variables[name]
    image_config: dict[str, Any] = {
        "Port": str(env.port),
        "RuntimeEnvironmentVariables": variables,
        "RuntimeEnvironmentSecrets": dict(secret_arns),
    }
    if current is not None and current.image_configuration.get("StartCommand"):
        # A start command set on the service (console or infrastructure) stays: update_service would drop it.
        image_config["StartCommand"] = current.image_configuration["StartCommand"]
    source: dict[str, Any] = {
        "ImageRepository": {
            "ImageIdentifier": image.ref,
            "ImageRepositoryType": "ECR",
            "ImageConfiguration": image_config,
        },
        # An ECR push must never deploy by itself: that would skip every gate.
        "AutoDeploymentsEnabled": False,
    }
    instance: dict[str, Any] = {"Cpu": env.cpu, "Memory": env.memory}
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


class AppRunnerTarget:
    """`DeployTarget` on AWS App Runner.  `client` is `boto3.client("apprunner")` (or a Stubber'd one)."""

    def __init__(
        self,
        client,
        *,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        out: Callable[[str], None] = print,
        poll_start: float = 2.0,
        poll_max: float = 10.0,
        timeout: float = 1800.0,
        throttle_attempts: int = 8,
    ):
        self.client = client
        self.sleep = sleep
        self.monotonic = monotonic
        self.out = out
        self.poll_start = poll_start
        self.poll_max = poll_max
        self.timeout = timeout
        self.throttle_attempts = throttle_attempts
        self._arns: dict[str, str] = {}

    # -- calls, with throttling retried -------------------------------------------------------------
    def _call(self, operation: str, **kwargs) -> dict[str, Any]:
        delay = 1.0
        for attempt in range(1, self.throttle_attempts + 1):
            try:
                return getattr(self.client, operation)(**kwargs)
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                if code not in THROTTLING or attempt == self.throttle_attempts:
                    if code in THROTTLING:
                        raise DeployError(
                            f"App Runner kept throttling {operation} ({attempt} attempts); try again later"
                        ) from None
                    raise
                self.out(f"App Runner throttled {operation}; retrying in {delay:.0f}s")
                self.sleep(delay)
                delay = min(self.poll_max, delay * 2)
        raise AssertionError("unreachable")

    # -- service ------------------------------------------------------------------------------------
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
        return ServiceState.from_describe(self._call("describe_service", ServiceArn=arn)["Service"])

    def wait_until_idle(self, service_name: str, budget: float) -> ServiceState:
        """Wait (bounded backoff) while another operation runs; return the last state seen."""
        started = self.monotonic()
        delay = self.poll_start
        while True:
            state = self.describe(service_name)
            elapsed = self.monotonic() - started
            if state.status != "OPERATION_IN_PROGRESS" or elapsed + delay > budget:
                return state
            self.out(f"[{elapsed:5.0f}s] {service_name}: another operation is in progress; waiting")
            self.sleep(delay)
            delay = min(self.poll_max, delay * 1.5)

    # -- operations ---------------------------------------------------------------------------------
    def start(self, request: dict[str, Any]) -> str:
        try:
            response = self._call("update_service", **request)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise DeployError(
                f"update_service refused: {error.get('Code')}: {error.get('Message', '')}".rstrip(": ")
            ) from None
        return response["OperationId"]

    def redeploy(self, service_arn: str) -> str:
        """Deploy the configured image again (`start_deployment`): fresh secret values, same digest."""
        try:
            return self._call("start_deployment", ServiceArn=service_arn)["OperationId"]
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise DeployError(f"start_deployment refused: {error.get('Code')}: {error.get('Message', '')}") from None

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
        started = self.monotonic()
        delay = self.poll_start
        last = None
        while True:
            status = self.operation_status(service_arn, operation_id)
            elapsed = self.monotonic() - started
            if status != last or status in IN_FLIGHT or status is None:
                self.out(f"[{elapsed:5.0f}s] operation {operation_id}: {status or 'not listed yet'}")
            last = status
            if status == SUCCEEDED:
                return
            if status in FAILURES:
                raise DeployFailed(status, operation_id)
            if elapsed + delay > self.timeout:
                raise DeployError(
                    f"operation {operation_id} still {status or 'not listed'} after {elapsed:.0f}s (limit "
                    f"{self.timeout:.0f}s); it may still finish: check `nox -s audit` and the App Runner console"
                )
            self.sleep(delay)
            delay = min(self.poll_max, delay * 1.5)
