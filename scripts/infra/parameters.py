"""Stack parameters, all from env/environments.toml (names from [environments.*], sizes from
[infrastructure.*]) plus, for an environment whose service exists, what the release engine last deployed."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from scripts.release.environments import DEFAULT_PATH, PLACEHOLDER, Environment, load
from scripts.release.images import ImageRef, ImageRefError
from scripts.release.targets.base import ENGINE_VARIABLES, ServiceState

# environments.toml [infrastructure.<env>] key -> template parameter.
SIZES = {
    "db_instance_class": "DbInstanceClass",
    "db_engine_version": "DbEngineVersion",
    "db_allocated_storage_gb": "DbAllocatedStorage",
    "db_backup_retention_days": "DbBackupRetentionDays",
    "db_multi_az": "DbMultiAz",
    "db_deletion_protection": "DbDeletionProtection",
    "log_retention_days": "LogRetentionDays",
    "vpc_cidr": "VpcCidr",
}
# Keys [infrastructure.<env>] may leave out (the template's default applies).
OPTIONAL = {"keep_apprunner": "KeepAppRunner"}


class ParameterError(Exception):
    """environments.toml lacks something a stack needs, or an image is missing or not by digest."""


def camel(variable: str) -> str:
    """DATABASE_URL -> DatabaseUrl: how an environment variable's name becomes part of a parameter name."""
    return "".join(word.capitalize() for word in variable.lower().split("_"))


def secret_parameter(variable: str) -> str:
    return f"Secret{camel(variable)}"


def variable_parameter(variable: str) -> str:
    return f"Var{camel(variable)}"


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def sizes(name: str, path: Path | str = DEFAULT_PATH) -> dict[str, str]:
    with open(path, "rb") as fh:
        table = tomllib.load(fh).get("infrastructure", {}).get(name)
    if table is None:
        raise ParameterError(f"{path}: no [infrastructure.{name}] table")
    missing = sorted(set(SIZES) - set(table))
    unknown = sorted(set(table) - set(SIZES) - set(OPTIONAL))
    if missing or unknown:
        raise ParameterError(f"[infrastructure.{name}]: missing {missing}, unknown {unknown}")
    return {(SIZES | OPTIONAL)[key]: _text(value) for key, value in table.items()}


def shared(github_repository: str, path: Path | str = DEFAULT_PATH) -> dict[str, str]:
    """The shared stack's parameters: both environments' names, one ECR repository."""
    envs = load(path)
    staging, production = envs["staging"], envs["production"]
    if staging.ecr_repository != production.ecr_repository:
        raise ParameterError("staging and production must share one ECR repository (production promotes a digest)")
    params = {
        "GitHubRepository": github_repository,
        "EcrRepositoryName": staging.ecr_repository,
        "StagingBranch": staging.branch,
        "ProductionBranch": production.branch,
        "StagingService": staging.service,
        "ProductionService": production.service,
        "StagingRdsIdentifier": staging.rds_identifier,
        "ProductionRdsIdentifier": production.rds_identifier,
        "StagingSecretNamespace": staging.secret_namespace,
        "ProductionSecretNamespace": production.secret_namespace,
    }
    params.update({f"Production{secret_parameter(var)}": name for var, name in production.secrets.items()})
    # The one staging secret the deploy and record roles may read: the smoke user's password.
    params["StagingSecretSmokeUserPassword"] = staging.secrets.get("SMOKE_USER_PASSWORD", "")
    # The ECS Express roles are in the shared stack whichever target an environment runs on today, so that moving
    # it needs no IAM change.
    for prefix, env in (("Staging", staging), ("Production", production)):
        if "ecs-express" not in env.targets:
            raise ParameterError(f"[environments.{env.name}.ecs-express]: the shared stack names its cluster")
        params[f"{prefix}Cluster"] = env.targets["ecs-express"]["cluster"]
    return params


def environment(
    env: Environment, running: ServiceState | None, image: str | None, path: Path | str = DEFAULT_PATH
) -> dict[str, str]:
    """An environment stack's parameters.  The image (and the variables the engine sets at deploy) are the
    running service's, so applying infrastructure never changes what runs; `image` is for the first create."""
    chosen = image or (running.image if running else "")
    if not chosen:
        raise ParameterError(
            f"{env.service} does not exist yet: pass --image <repository>@sha256:<digest> for its first version"
        )
    try:
        ref = ImageRef.parse(chosen)
    except ImageRefError as exc:
        raise ParameterError(f"--image: {exc}") from None
    if ref.repository != env.ecr_repository:
        raise ParameterError(f"--image must come from {env.ecr_repository}, not {ref.repository}")
    params = {
        "Environment": env.name,
        "NodeEnv": env.node_env,
        "ServiceName": env.service,
        "ImageIdentifier": ref.ref,
        "Port": str(env.port),
        **service(env),
        "HealthCheckPath": env.health_check_path,
        "RdsIdentifier": env.rds_identifier,
        "SecretNamespace": env.secret_namespace,
        **sizes(env.name, path),
    }
    params.update({secret_parameter(var): name for var, name in env.secrets.items()})
    params.update({variable_parameter(var): value for var, value in env.variables.items()})
    params.update(deployed(running))
    return params


def service(env: Environment) -> dict[str, str]:
    """The service part of an environment stack: the deploy target and each target's settings, in its units.
    `keep_apprunner` ([infrastructure.<env>]) keeps the App Runner service while the environment moves."""
    params = {"Target": env.target}
    if "apprunner" in env.targets:
        params.update(Cpu=env.targets["apprunner"]["cpu"], Memory=env.targets["apprunner"]["memory"])
    if env.target == "ecs-express":
        ecs = env.settings
        params.update(
            EcsCpu=ecs["cpu"],
            EcsMemory=ecs["memory"],
            Cluster=ecs["cluster"],
            EcsExecutionRole=ecs["execution_role"],
            EcsTaskRole=ecs["task_role"],
            EcsInfrastructureRole=ecs["infrastructure_role"],
        )
    return params


def deployed(running: ServiceState | None) -> dict[str, str]:
    """The parameters that carry what the release engine deployed (empty before the first deploy)."""
    live = running.variables if running else {}
    return {variable_parameter(var): live.get(var, "") for var in ENGINE_VARIABLES if var != "NODE_ENV"}


def deployed_since(plan_parameters: dict[str, str], running: ServiceState | None) -> list[str]:
    """The parameters a plan holds that no longer match the running service (a deploy happened since)."""
    if running is None:
        return []
    now = {"ImageIdentifier": running.image, **deployed(running)}
    return sorted(k for k, v in now.items() if plan_parameters.get(k, "") != v)


def placeholders(params: dict[str, str]) -> list[str]:
    """Parameters that still hold a template placeholder (a service started with one would not come up)."""
    return sorted(k for k, v in params.items() if k.startswith("Var") and PLACEHOLDER.search(v))


def as_boto(params: dict[str, str]) -> list[dict[str, str]]:
    return [{"ParameterKey": k, "ParameterValue": v} for k, v in sorted(params.items())]
