"""The environments, read from env/environments.toml (the one definition; it holds no secrets)."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PATH = ROOT / "env" / "environments.toml"

# What a template placeholder looks like ("<staging phone number id>"): never sent to App Runner.
PLACEHOLDER = re.compile(r"<[^>]*>|change[-_ ]?me|replace[-_ ]?me|placeholder", re.IGNORECASE)


# Each target's settings, in the target's own units: App Runner takes "1 vCPU" / "2 GB"; ECS Express Mode takes
# CPU units and MiB ("1024" / "2048") and names its cluster and the roles of the service (role names, not ARNs:
# the account is the image's).
TARGET_SETTINGS = {
    "apprunner": {"cpu": re.compile(r"(0\.25|0\.5|1|2|4) vCPU"), "memory": re.compile(r"(0\.5|1|2|3|4|6|8|10|12) GB")},
    "ecs-express": {
        "cluster": re.compile(r"[A-Za-z0-9_-]{1,255}"),
        "cpu": re.compile(r"256|512|1024|2048|4096|8192|16384"),
        "memory": re.compile(r"[1-9][0-9]{2,5}"),
        "execution_role": re.compile(r"[\w+=,.@-]{1,64}"),
        "infrastructure_role": re.compile(r"[\w+=,.@-]{1,64}"),
        "task_role": re.compile(r"[\w+=,.@-]{1,64}"),
    },
}


class DefinitionError(Exception):
    """The definition file is wrong, or an environment is unknown / not deployable."""


@dataclass(frozen=True)
class Environment:
    name: str
    deployable: bool
    node_env: str
    port: int
    health_check_path: str
    branch: str = ""
    service: str = ""
    region: str = ""
    ecr_repository: str = ""
    target: str = "apprunner"
    rds_identifier: str = ""
    secret_namespace: str = ""
    forbidden_namespaces: tuple[str, ...] = ()
    secrets: dict[str, str] = field(default_factory=dict)
    variables: dict[str, str] = field(default_factory=dict)
    # Each target's own settings (env/environments.toml `[environments.<name>.<target>]`); `target` picks one.
    targets: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def settings(self) -> dict[str, str]:
        """The settings of the target this environment deploys to."""
        return self.targets.get(self.target, {})

    def secret_name_allowed(self, name: str) -> bool:
        """A secret name is inside this environment's namespace and outside every forbidden one."""
        return name.startswith(self.secret_namespace) and not any(
            name.startswith(prefix) for prefix in self.forbidden_namespaces
        )


_REQUIRED_DEPLOYABLE = (
    "branch",
    "service",
    "region",
    "ecr_repository",
    "rds_identifier",
    "secret_namespace",
)


def load(path: Path | str = DEFAULT_PATH) -> dict[str, Environment]:
    """Read and check the definition file; raises DefinitionError naming the problem."""
    with open(path, "rb") as fh:
        data = tomllib.load(fh)
    if data.get("schema") != 1:
        raise DefinitionError(f"{path}: unknown schema {data.get('schema')!r} (expected 1)")
    result: dict[str, Environment] = {}
    for name, raw in data.get("environments", {}).items():
        raw = dict(raw)
        try:
            env = Environment(
                name=name,
                forbidden_namespaces=tuple(raw.pop("forbidden_namespaces", ())),
                secrets=dict(raw.pop("secrets", {})),
                variables={k: str(v) for k, v in raw.pop("variables", {}).items()},
                targets={kind: dict(raw.pop(kind)) for kind in TARGET_SETTINGS if kind in raw},
                **raw,
            )
        except TypeError as exc:
            raise DefinitionError(f"{path}: environment {name!r}: {exc}") from None
        if env.deployable:
            missing = [f for f in _REQUIRED_DEPLOYABLE if not getattr(env, f)]
            if missing:
                raise DefinitionError(f"{path}: environment {name!r} is deployable but lacks {', '.join(missing)}")
            _check_targets(path, env)
            if env.node_env != name:
                raise DefinitionError(f"{path}: environment {name!r} must set node_env = {name!r}")
            for var, secret in env.secrets.items():
                if not env.secret_name_allowed(secret):
                    raise DefinitionError(
                        f"{path}: {name}.secrets.{var} = {secret!r} is outside {env.secret_namespace}*"
                        + (f" or inside {', '.join(env.forbidden_namespaces)}" if env.forbidden_namespaces else "")
                    )
            clash = set(env.secrets) & set(env.variables)
            if clash:
                raise DefinitionError(f"{path}: {name}: {', '.join(sorted(clash))} is both secret and variable")
        result[name] = env
    if "local" not in result or result["local"].deployable:
        raise DefinitionError(f"{path}: `local` must be declared and not deployable")
    return result


def _check_targets(path: Path | str, env: Environment) -> None:
    """The chosen target is known and has its settings; every target table given is complete and in its units,
    so switching `target` is the only change needed to move an environment."""
    if env.target not in TARGET_SETTINGS:
        raise DefinitionError(f"{path}: {env.name}.target = {env.target!r} is not one of {', '.join(TARGET_SETTINGS)}")
    if env.target not in env.targets:
        raise DefinitionError(f"{path}: {env.name} deploys to {env.target} but has no [{env.name}.{env.target}]")
    for kind, settings in env.targets.items():
        for key, shape in TARGET_SETTINGS[kind].items():
            value = str(settings.get(key, ""))
            if not shape.fullmatch(value):
                raise DefinitionError(f"{path}: {env.name}.{kind}.{key} is missing or not in {kind}'s units")
        unknown = sorted(set(settings) - set(TARGET_SETTINGS[kind]))
        if unknown:
            raise DefinitionError(f"{path}: {env.name}.{kind}: unknown setting {', '.join(unknown)}")


@dataclass(frozen=True)
class Budget:
    """The engine's time budget and what follows from it.  A job killed by its timeout mid-deploy could leave
    production on a failed image, so the job's timeout is derived from the engine's waits, never the reverse."""

    seconds: int
    # Checkout, Python, nox venv, OIDC, and (staging) the image build: the part of a job outside the engine.
    SETUP_MINUTES = 20

    @property
    def idle(self) -> float:
        return self.seconds / 5

    @property
    def deploy(self) -> float:
        return self.seconds * 2 / 5

    @property
    def rollback(self) -> float:
        return self.seconds * 2 / 5

    @property
    def job_timeout_minutes(self) -> int:
        return -(-self.seconds // 60) + self.SETUP_MINUTES


def budget(path: Path | str = DEFAULT_PATH) -> Budget:
    with open(path, "rb") as fh:
        seconds = tomllib.load(fh).get("release", {}).get("budget_seconds")
    if not isinstance(seconds, int) or seconds < 60:
        raise DefinitionError(f"{path}: [release] budget_seconds must be a whole number of seconds >= 60")
    return Budget(seconds)


def deployable(name: str, path: Path | str = DEFAULT_PATH) -> Environment:
    envs = load(path)
    if name not in envs:
        raise DefinitionError(f"unknown environment {name!r} (known: {', '.join(envs)})")
    env = envs[name]
    if not env.deployable:
        raise DefinitionError(
            f"{name} is never deployed: App Runner is only for staging and production, never for feature "
            "iteration, UI testing or debugging (run `nox -s dev` locally)"
        )
    return env


def for_branch(branch: str, path: Path | str = DEFAULT_PATH) -> Environment | None:
    return next((e for e in load(path).values() if e.deployable and e.branch == branch), None)
