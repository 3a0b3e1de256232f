"""The deploy-target port: what the release engine needs from a place that runs the image.

The gates, plan, deploy, smoke, rollback and audit see only `DeployTarget`, `ServiceState` and `RequestView`.
Each adapter (targets/apprunner.py, targets/ecs_express.py) builds its own service's requests and reads its own
service's state into these shapes.  The runtime configuration (`ServiceState.image_configuration`, the production
history's `configuration`) has one shape for every target: `Port`, `RuntimeEnvironmentVariables`,
`RuntimeEnvironmentSecrets` (variable -> full secret ARN) and, when the service sets one, its start command; so a
history written on one target can be rolled back to on the other.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from botocore.exceptions import ClientError

from scripts.release.environments import Environment
from scripts.release.images import ImageRef

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
# The engine's own words for a service's state, whatever the target calls it.
RUNNING = "RUNNING"
BUSY = "OPERATION_IN_PROGRESS"


class DeployError(Exception):
    """A deploy could not start, failed, or timed out.  The message says what happened and what runs now."""


class DeployFailed(DeployError):
    def __init__(self, status: str, operation_id: str, reason: str):
        self.status = status
        self.operation_id = operation_id
        super().__init__(f"operation {operation_id}: {reason}")


@dataclass(frozen=True)
class ServiceState:
    """What a service runs now.  `status` is RUNNING, OPERATION_IN_PROGRESS or the target's own word for
    anything else (PAUSED, DRAINING, ...)."""

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
    log_group: str | None = None
    # Target-specific live settings an update must carry over (ECS: the container's log configuration).
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def https_url(self) -> str:
        return self.url if self.url.startswith("http") else f"https://{self.url}"


@dataclass(frozen=True)
class RequestView:
    """What a deploy request would make the service run, in the target-independent shape the gates check."""

    image: str
    configuration: dict[str, Any]
    health_protocol: str | None
    health_path: str | None
    auto_deploy: bool | None

    @property
    def variables(self) -> dict[str, str]:
        return self.configuration.get("RuntimeEnvironmentVariables", {})


class DeployTarget(Protocol):
    """The port.  Transport: describe / wait_until_idle / start / redeploy / wait_for.  Shape: the requests the
    target takes, and how to read them back for the gates and the production history."""

    name: str  # "apprunner" | "ecs-express"
    update_call: str  # the API call `start` makes, for the log lines
    timeout: float

    def describe(self, service_name: str) -> ServiceState: ...

    def wait_until_idle(self, service_name: str, budget: float) -> ServiceState: ...

    def start(self, request: dict[str, Any]) -> str: ...

    def redeploy(self, service_arn: str) -> str: ...

    def wait_for(self, service_arn: str, operation_id: str) -> None: ...

    def update_request(
        self, env: Environment, image: ImageRef, secret_arns: dict[str, str], git_sha: str, current: ServiceState | None
    ) -> dict[str, Any]: ...

    def view(self, request: dict[str, Any]) -> RequestView: ...

    def is_redeploy(self, request: dict[str, Any], current: ServiceState) -> bool: ...

    def rollback_request(self, previous: ServiceState) -> dict[str, Any]: ...

    def recorded_request(
        self, state: ServiceState, image: str, configuration: dict[str, Any], health_path: str
    ) -> dict[str, Any]: ...

    def log_group(self, state: ServiceState) -> str | None: ...


def runtime_variables(env: Environment, image: ImageRef, git_sha: str, current: ServiceState | None) -> dict[str, str]:
    """The variables every deploy sends: the environment's own, plus what the engine sets (NODE_ENV, GIT_SHA,
    IMAGE_DIGEST, PUBLIC_BASE_URL and the rollback target MV_OS_PREVIOUS_*)."""
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
    return variables


def image_configuration(
    env: Environment, image: ImageRef, secret_arns: dict[str, str], git_sha: str, current: ServiceState | None
) -> dict[str, Any]:
    """Port, variables and secret ARNs of a deploy, on any target.  A start command set on the service (console
    or infrastructure) stays: an update would drop it."""
    configuration: dict[str, Any] = {
        "Port": str(env.port),
        "RuntimeEnvironmentVariables": runtime_variables(env, image, git_sha, current),
        "RuntimeEnvironmentSecrets": dict(secret_arns),
    }
    if current is not None and current.image_configuration.get("StartCommand"):
        configuration["StartCommand"] = current.image_configuration["StartCommand"]
    return configuration


class Polling:
    """The bounded loops both adapters share: throttling retried with backoff, waiting while another operation
    runs, and polling one operation until it ends.  Sleep and clock are injected, so tests run them instantly."""

    label = "the deploy target"

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

    def describe(self, service_name: str) -> ServiceState:
        raise NotImplementedError

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
                            f"{self.label} kept throttling {operation} ({attempt} attempts); try again later"
                        ) from None
                    raise
                self.out(f"{self.label} throttled {operation}; retrying in {delay:.0f}s")
                self.sleep(delay)
                delay = min(self.poll_max, delay * 2)
        raise AssertionError("unreachable")

    def _refused(self, operation: str, **kwargs) -> dict[str, Any]:
        """A call that starts something: a refusal becomes a DeployError naming the call and AWS's reason."""
        try:
            return self._call(operation, **kwargs)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise DeployError(
                f"{operation} refused: {error.get('Code')}: {error.get('Message', '')}".rstrip(": ")
            ) from None

    def wait_until_idle(self, service_name: str, budget: float) -> ServiceState:
        """Wait (bounded backoff) while another operation runs; return the last state seen."""
        started = self.monotonic()
        delay = self.poll_start
        while True:
            state = self.describe(service_name)
            elapsed = self.monotonic() - started
            if state.status != BUSY or elapsed + delay > budget:
                return state
            self.out(f"[{elapsed:5.0f}s] {service_name}: another operation is in progress; waiting")
            self.sleep(delay)
            delay = min(self.poll_max, delay * 1.5)

    def _wait(
        self,
        operation_id: str,
        status_of: Callable[[], str | None],
        succeeded: str,
        failures: dict[str, str],
        in_flight: tuple[str, ...],
        where: str,
    ) -> None:
        """Poll `status_of` until `succeeded` (return) or one of `failures` (DeployFailed), bounded by timeout."""
        started = self.monotonic()
        delay = self.poll_start
        last = None
        while True:
            status = status_of()
            elapsed = self.monotonic() - started
            if status != last or status in in_flight or status is None:
                self.out(f"[{elapsed:5.0f}s] operation {operation_id}: {status or 'not listed yet'}")
            last = status
            if status == succeeded:
                return
            if status in failures:
                raise DeployFailed(status, operation_id, failures[status])
            if elapsed + delay > self.timeout:
                raise DeployError(
                    f"operation {operation_id} still {status or 'not listed'} after {elapsed:.0f}s (limit "
                    f"{self.timeout:.0f}s); it may still finish: check `nox -s audit` and {where}"
                )
            self.sleep(delay)
            delay = min(self.poll_max, delay * 1.5)
