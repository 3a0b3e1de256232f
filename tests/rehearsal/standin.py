"""Local stand-ins for AWS App Runner and ECS Express Mode: the release engine's `DeployTarget`, running the image's
real start command.  Both share the deployment; each speaks its own target's request shape and status words.

An "image" is the git tree it was built from, unpacked in the image store.  A deployment resolves the secrets it
was given by ARN from Secrets Manager (moto) as the service's role does, starts the image's entrypoint
(scripts/docker-entrypoint.sh: migrate, then gunicorn with gunicorn.conf.py) with exactly the request's variables
and secrets on a free loopback port, health-checks /readyz, and only then moves the service's HTTPS front end to
it and stops the old instance.  A deployment that never becomes healthy is rolled back (App Runner's
ROLLBACK_SUCCEEDED, ECS's ROLLBACK_SUCCESSFUL) and the old instance keeps serving; its output goes to the
service's CloudWatch Logs group (moto)."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from mv_os.policy import REHEARSAL_LOCAL_DATABASE
from scripts.release.summary import log_group
from scripts.release.targets import ecs_express
from scripts.release.targets.apprunner import FAILURES, AppRunnerShape, from_describe
from scripts.release.targets.base import DeployError, DeployFailed, ServiceState
from tests.rehearsal.network import Forwarder, tcp_to
from tests.support.servers import free_port

HEALTHY_WITHIN = 45.0


@dataclass
class Instance:
    proc: subprocess.Popen
    port: int
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)

    def environ(self) -> dict[str, str]:
        """What the instance really runs with (its gunicorn master's environment)."""
        raw = Path(f"/proc/{self.proc.pid}/environ").read_bytes()
        return dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)


@dataclass
class Service:
    name: str
    arn: str
    front: Forwarder
    image: str = ""
    configuration: dict[str, Any] = field(default_factory=dict)
    instance: Instance | None = None
    operations: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.front.port}"


class LocalRunner:
    """The deployment both stand-ins share.  A subclass names its ARNs, log group and status words."""

    # What `_deploy` records: success, never healthy, no such image.
    OUTCOMES = {"ok": "", "unhealthy": "", "missing": ""}
    FAILURES: dict[str, str] = {}

    def __init__(self, images: Path, secretsmanager, logs, tls, account: str, region: str, workdir: Path):
        self.images, self.secretsmanager, self.logs = images, secretsmanager, logs
        self.tls, self.account, self.region, self.workdir = tls, account, region, workdir
        self.services: dict[str, Service] = {}
        self.timeout = 0.0  # set by the engine's cli from its budget; deployments here are synchronous

    def service_arn(self, name: str) -> str:
        raise NotImplementedError

    def group(self, service: Service) -> str:
        raise NotImplementedError

    def create_service(self, name: str) -> Service:
        service = Service(name, self.service_arn(name), front=None)  # type: ignore[arg-type]
        service.front = Forwarder("127.0.0.1", lambda: self._upstream(service), self.tls)
        self.services[name] = service
        self.logs.create_log_group(logGroupName=self.group(service))
        return service

    def _upstream(self, service: Service):
        if service.instance is None:
            raise OSError("no instance")
        return tcp_to("127.0.0.1", service.instance.port)()

    def _by_arn(self, arn: str) -> Service:
        return next(s for s in self.services.values() if s.arn == arn)

    def wait_until_idle(self, service_name: str, budget: float) -> ServiceState:
        return self.describe(service_name)

    def wait_for(self, service_arn: str, operation_id: str) -> None:
        status = self._by_arn(service_arn).operations.get(operation_id)
        if status is None:
            raise DeployError(f"operation {operation_id} is unknown")
        if status in self.FAILURES:
            raise DeployFailed(status, operation_id, self.FAILURES[status])

    # -- the deployment -------------------------------------------------------------------------------------------
    def _deploy(self, service: Service, image: str, configuration: dict[str, Any]) -> str:
        operation = str(uuid.uuid4())
        tree_dir = self.images / image.rsplit("@sha256:", 1)[-1]
        if not tree_dir.is_dir():
            service.operations[operation] = self.OUTCOMES["missing"]
            return operation
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "WHATSAPP_", "JWT_", "NODE_ENV"))}
        env.update(configuration.get("RuntimeEnvironmentVariables", {}))
        for var, arn in configuration.get("RuntimeEnvironmentSecrets", {}).items():
            env[var] = self.secretsmanager.get_secret_value(SecretId=arn)["SecretString"]
        port = free_port()
        env.update(PORT=str(port), BIND_HOST="127.0.0.1", PYTHONPATH=str(tree_dir / "backend"))
        # Production here runs on this machine, so its database is local; only the stand-in says so.
        env[REHEARSAL_LOCAL_DATABASE] = "1"
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        log = self.workdir / f"{service.name}-{operation}.log"
        with log.open("w") as out:
            proc = subprocess.Popen(
                ["/bin/sh", str(tree_dir / "scripts" / "docker-entrypoint.sh")],
                env=env,
                cwd="/",
                stdout=out,
                stderr=subprocess.STDOUT,
                process_group=0,
            )
        new = Instance(proc, port, log)
        if not _healthy(new):
            new.stop()
            self._ship_log(service, new)
            service.operations[operation] = self.OUTCOMES["unhealthy"]
            return operation
        old, service.instance = service.instance, new
        service.image, service.configuration = image, copy.deepcopy(configuration)
        if old is not None:
            old.stop()
        service.operations[operation] = self.OUTCOMES["ok"]
        return operation

    def _ship_log(self, service: Service, instance: Instance) -> None:
        lines = instance.log.read_text(errors="replace").splitlines()[-200:] or ["(no output)"]
        group, stream = self.group(service), f"instance/{instance.proc.pid}"
        self.logs.create_log_stream(logGroupName=group, logStreamName=stream)
        now = int(time.time() * 1000)
        events = [{"timestamp": now + i, "message": line} for i, line in enumerate(lines)]
        self.logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events)

    def close(self) -> None:
        for service in self.services.values():
            if service.instance is not None:
                service.instance.stop()
            service.front.close()

    def redeploy(self, service_arn: str) -> str:
        service = self._by_arn(service_arn)
        return self._deploy(service, service.image, service.configuration)


class LocalAppRunner(AppRunnerShape, LocalRunner):
    OUTCOMES = {"ok": "SUCCEEDED", "unhealthy": "ROLLBACK_SUCCEEDED", "missing": "FAILED"}
    FAILURES = FAILURES

    def service_arn(self, name: str) -> str:
        return f"arn:aws:apprunner:{self.region}:{self.account}:service/{name}/{uuid.uuid4().hex}"

    def group(self, service: Service) -> str:
        return log_group(service.arn)

    # -- DeployTarget ---------------------------------------------------------------------------------------------
    def describe(self, service_name: str) -> ServiceState:
        s = self.services[service_name]
        return from_describe(
            {
                "ServiceArn": s.arn,
                "ServiceName": s.name,
                "Status": "RUNNING",
                "ServiceUrl": s.url,
                "SourceConfiguration": {
                    "ImageRepository": {
                        "ImageIdentifier": s.image,
                        "ImageConfiguration": copy.deepcopy(s.configuration),
                    },
                    "AutoDeploymentsEnabled": False,
                    "AuthenticationConfiguration": {
                        "AccessRoleArn": f"arn:aws:iam::{self.account}:role/mv-os-apprunner-ecr-access"
                    },
                },
                "InstanceConfiguration": {
                    "InstanceRoleArn": f"arn:aws:iam::{self.account}:role/{s.name}-instance",
                },
            }
        )

    def start(self, request: dict[str, Any]) -> str:
        repo = request["SourceConfiguration"]["ImageRepository"]
        return self._deploy(self._by_arn(request["ServiceArn"]), repo["ImageIdentifier"], repo["ImageConfiguration"])


class LocalEcsExpress(ecs_express.EcsExpressShape, LocalRunner):
    OUTCOMES = {"ok": "SUCCESSFUL", "unhealthy": "ROLLBACK_SUCCESSFUL", "missing": "ROLLBACK_SUCCESSFUL"}
    FAILURES = ecs_express.FAILURES
    CLUSTER = "rehearsal"

    def service_arn(self, name: str) -> str:
        return f"arn:aws:ecs:{self.region}:{self.account}:service/{self.CLUSTER}/{name}"

    def group(self, service: Service) -> str:
        return f"/aws/ecs/{self.CLUSTER}/{service.name}"

    def describe(self, service_name: str) -> ServiceState:
        s = self.services[service_name]
        logs = {"logGroup": self.group(s), "logStreamPrefix": "ecs"}
        container = ecs_express.container_of(s.image, s.configuration, logs) if s.image else {}
        live = {"primaryContainer": container, "ingressPaths": [{"accessType": "PUBLIC", "endpoint": s.url}]}
        express = {"serviceArn": s.arn, "serviceName": s.name, "status": {"statusCode": "ACTIVE"}}
        return ecs_express.from_describe({**express, "activeConfigurations": [live]}, busy=False)

    def start(self, request: dict[str, Any]) -> str:
        container = request["primaryContainer"]
        configuration = ecs_express.configuration_of(container)
        return self._deploy(self._by_arn(request["serviceArn"]), container["image"], configuration)


def _healthy(instance: Instance) -> bool:
    """App Runner's health check: HTTP GET on the port until it answers 200 (bounded)."""
    path = "/readyz"
    deadline = time.monotonic() + HEALTHY_WITHIN
    while time.monotonic() < deadline:
        if instance.proc.poll() is not None:
            return False
        try:
            if requests.get(f"http://127.0.0.1:{instance.port}{path}", timeout=2).status_code == 200:
                return True
        except requests.RequestException:
            pass
        time.sleep(0.1)
    return False
