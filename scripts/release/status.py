"""`nox -s status`: what runs on staging and production, what a promotion of develop would ship, and whether
the production gates would let it through.  Read-only: it reads App Runner, the release records (record.py) and
git, and probes each service's health path; it writes nothing anywhere (the promotion candidate, develop merged
into main, is built in a throwaway repository that borrows this one's objects).

The result is one dict whose field names are stable (docs/release.md, "Status"); status_render.py prints it as
text or markdown, `--json` prints it as it is."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

from scripts.release import flows, status_render
from scripts.release.environments import DefinitionError, Environment, load
from scripts.release.gates import Aws, aws_error, git
from scripts.release.record import ProductionHistory, RecordError, StagingRecord
from scripts.release.status_promotion import branch_ref, not_in_production, promotion, tree_of, up_to_date
from scripts.release.targets.base import DeployError, ServiceState

SCHEMA = 1
DEPLOY_OPERATIONS = ("UPDATE_SERVICE", "START_DEPLOYMENT", "CREATE_SERVICE")
Connector = Callable[[Environment], tuple[Aws | None, str]]


class Unread(list):
    """What could not be read, one short phrase each; printed as ONE line."""

    def add(self, what: str, exc: BaseException | str) -> None:
        why = exc if isinstance(exc, str) else aws_error(exc)
        self.append(f"{what} ({why})")


def _iso(value: Any) -> str | None:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat(timespec="seconds")
    return str(value) if value else None


# -- one environment --------------------------------------------------------------------------------------------
def _empty(env: Environment) -> dict[str, Any]:
    return {
        "service": env.service,
        "deployed": None,
        "status": None,
        "url": None,
        "image": None,
        "digest": None,
        "commit": None,
        "tree": None,
        "deployed_at": None,
        "deployed_by": None,
        "last_deploy": None,
        "ready": None,
    }


def _operations(aws: Aws, arn: str) -> list[dict[str, Any]]:
    """The service's newest operations (App Runner lists them newest first)."""
    client = getattr(aws.target, "client", None)
    if client is None:
        raise LookupError("this deploy target does not list its operations")
    return client.list_operations(ServiceArn=arn, MaxResults=20).get("OperationSummaryList", [])


def read_environment(repo: Path, env: Environment, aws: Aws | None, unread: Unread) -> dict[str, Any]:
    """What App Runner says `env` runs, where it came from (the production history or the staging record) and
    how its last deploy went."""
    found = _empty(env)
    if aws is None:
        return found
    try:
        state: ServiceState = aws.target.describe(env.service)
    except DeployError:
        found["deployed"] = False  # no such service: nothing was ever deployed
        return found
    except Exception as exc:  # noqa: BLE001 - AccessDenied, endpoint errors: say so, keep going
        unread.add(f"{env.name} service {env.service}", exc)
        return found
    digest = state.image.rsplit("@", 1)[-1] if "@" in state.image else None
    commit = state.variables.get("GIT_SHA")
    found.update(
        deployed=True,
        status=state.status,
        url=state.https_url if state.url else None,
        image=state.image,
        digest=digest,
        commit=commit,
        tree=tree_of(repo, commit),
    )
    try:
        ops = [op for op in _operations(aws, state.arn) if op.get("Type") in DEPLOY_OPERATIONS]
    except Exception as exc:  # noqa: BLE001
        unread.add(f"{env.name} operations", str(exc) if isinstance(exc, LookupError) else exc)
        ops = []
    if ops:
        last = ops[0]
        found["last_deploy"] = {
            "operation": last.get("Id"),
            "type": last.get("Type"),
            "result": last.get("Status"),
            "started_at": _iso(last.get("StartedAt")),
            "ended_at": _iso(last.get("EndedAt")),
        }
        done = next((op for op in ops if op.get("Status") == "SUCCEEDED"), None)
        if done:
            found["deployed_at"] = _iso(done.get("EndedAt") or done.get("UpdatedAt"))
    return found


def production_history(aws: Aws | None, found: dict[str, Any], unread: Unread) -> dict[str, Any]:
    """Production: the history entry of the digest it runs (tree, run); a running digest missing from the
    history is said plainly, because only history entries can be rolled back to."""
    history: dict[str, Any] = {"entries": None, "entry": None}
    if aws is None:
        return history
    try:
        entries = ProductionHistory(aws.ssm).entries()
    except Exception as exc:  # noqa: BLE001 - includes a tampered history (RecordError)
        unread.add("the production history", exc if not isinstance(exc, RecordError) else str(exc))
        return history
    history["entries"] = len(entries)
    entry = next((e for e in reversed(entries) if e.digest == found["digest"]), None)
    if entry is not None:
        history["entry"] = entry.seq
        found["deployed_by"] = entry.run
        found["tree"] = found["tree"] or entry.tree
        found["deployed_at"] = found["deployed_at"] or entry.at
    return history


def staging_record(aws: Aws | None, found: dict[str, Any], unread: Unread) -> dict[str, Any]:
    """Staging: does the tree it runs carry a staging-validated record naming the digest it runs?"""
    record: dict[str, Any] = {"valid": None, "digest": None, "run": None, "problem": None}
    if aws is None or not found["deployed"]:
        return record
    if not found["tree"]:
        record["problem"] = f"commit {found['commit'] or 'unknown'} is not in this clone (git fetch), tree unknown"
        return record
    try:
        validated = StagingRecord(aws.ssm).read(found["tree"])
    except RecordError as exc:
        record.update(valid=False, problem=str(exc))
        return record
    except Exception as exc:  # noqa: BLE001
        unread.add("the staging-validated records", exc)
        return record
    if validated is None:
        record.update(valid=False, problem=f"no staging-validated record for tree {found['tree'][:12]}")
        return record
    record.update(digest=validated.digest, run=validated.run)
    if validated.digest != found["digest"]:
        record.update(valid=False, problem=f"the record names {validated.digest}, staging runs {found['digest']}")
        return record
    record["valid"] = True
    found["deployed_by"] = validated.run
    return record


def probe(url: str, path: str, timeout: float) -> dict[str, Any]:
    """GET <url><path> once, now: 200 is ready; anything else says what came back."""
    target = url.rstrip("/") + path
    try:
        response = requests.get(target, timeout=timeout, allow_redirects=False)
    except requests.RequestException as exc:
        return {"ok": False, "http_status": None, "detail": f"did not answer ({type(exc).__name__})"}
    ok = response.status_code == 200
    return {"ok": ok, "http_status": response.status_code, "detail": f"{path} answered {response.status_code}"}


# -- everything ------------------------------------------------------------------------------------------------
def collect(
    repo: Path,
    envs: dict[str, Environment],
    connector: Connector,
    *,
    timeout: float = 2.0,
    now: Callable[[], str] = flows.now,
) -> dict[str, Any]:
    """The whole status as one JSON-able dict (field names: docs/release.md, "Status")."""
    unread = Unread()
    deployable = {name: env for name, env in envs.items() if env.deployable}
    branches = {env.branch: branch_ref(repo, env.branch) for env in deployable.values()}
    status: dict[str, Any] = {"schema": SCHEMA, "generated_at": now(), "git": {"head": git(repo, "rev-parse", "HEAD")}}
    status["git"].update(branches)
    clients: dict[str, Aws | None] = {}
    environments: dict[str, dict[str, Any]] = {}
    probes: dict[str, Future] = {}
    production_unread = False
    with ThreadPoolExecutor(max_workers=max(1, len(deployable))) as pool:
        for name, env in deployable.items():
            aws, missing = connector(env)
            if aws is None:
                phrase = f"{missing or 'no AWS access'}: so no services, release records, history or gates"
                if phrase not in unread:
                    unread.append(phrase)
            clients[name] = aws
            found = read_environment(repo, env, aws, unread)
            if name == "production":
                found["history"] = production_history(aws, found, unread)
            else:
                found["record"] = staging_record(aws, found, unread)
            if found["url"]:
                probes[name] = pool.submit(probe, found["url"], env.health_check_path, timeout)
            environments[name] = found
            if name == "production" and aws is not None:
                # What the gates read: the service and the history (not the operations list).
                production_unread = found["deployed"] is None or found["history"]["entries"] is None
        status["environments"] = environments
        production = deployable.get("production")
        develop = branches.get(deployable["staging"].branch) if "staging" in deployable else None
        main = branches.get(production.branch) if production else None
        shallow = git(repo, "rev-parse", "--is-shallow-repository") == "true"
        if shallow:
            # A CI checkout with fetch-depth 1 has neither the commits nor the other branch to merge.
            unread.append("git history (a shallow clone: the commits and the promotion need fetch-depth 0)")
        status["not_in_production"] = not_in_production(
            repo, environments.get("production"), None if shallow else develop, main
        )
        if production is not None:
            status["promotion"] = promotion(
                repo, production, clients.get("production"), main, None if shallow else develop
            )
            status["promotion"].update(up_to_date(environments["production"], status["promotion"]))
            if production_unread and status["promotion"]["verdict"] == "refused":
                status["promotion"]["verdict"] = "unknown"  # the gates could not read what they need
        for name, future in probes.items():
            environments[name]["ready"] = future.result()
    status["unread"] = list(unread)
    return status


# -- command line -----------------------------------------------------------------------------------------------
def connector() -> Connector:
    """flows.connect, once per region (staging and production usually share one)."""
    cache: dict[str, tuple[Aws | None, str]] = {}

    def connect(env: Environment) -> tuple[Aws | None, str]:
        if env.region not in cache:
            cache[env.region] = flows.connect(env)
        return cache[env.region]

    return connect


def main(argv: list[str] | None = None, repo: Path | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.release.status", description=__doc__.splitlines()[0])
    form = parser.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true", help="the same data as JSON (docs/release.md, Status)")
    form.add_argument("--markdown", action="store_true", help="markdown, for a GitHub job summary")
    args = parser.parse_args(argv)
    try:
        envs = load()
    except DefinitionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    status = collect(repo or Path.cwd(), envs, connector())
    if args.json:
        print(json.dumps(status, indent=2, sort_keys=True))
    else:
        print(status_render.markdown(status) if args.markdown else status_render.text(status))
    return 0


if __name__ == "__main__":
    sys.exit(main())
