"""Deploy targets: where an environment's image runs, chosen per environment by `target` in
env/environments.toml.  `connect` builds the adapter with its AWS client; `shape` is the same adapter's request
building without a client (what `plan` prints when there are no credentials)."""

from __future__ import annotations

from scripts.release.environments import Environment
from scripts.release.targets.apprunner import AppRunnerShape, AppRunnerTarget
from scripts.release.targets.base import DeployTarget
from scripts.release.targets.ecs_express import EcsExpressShape, EcsExpressTarget


def connect(env: Environment, session, config) -> DeployTarget:
    if env.target == "ecs-express":
        return EcsExpressTarget(session.client("ecs", config=config), cluster=env.settings["cluster"])
    return AppRunnerTarget(session.client("apprunner", config=config))


def shape(env: Environment):
    return EcsExpressShape() if env.target == "ecs-express" else AppRunnerShape()
