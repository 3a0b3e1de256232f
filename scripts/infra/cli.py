"""`nox -s infra -- plan|apply|diff <target>` and `nox -s infra -- iam [--check]`.

Targets: `staging` and `production` (one environment stack each) and `shared` (OIDC provider, ECR repository,
every IAM role; applied by an administrator).  AWS credentials and region come from the standard SDK
environment (AWS_PROFILE, AWS_ENDPOINT_URL, ...); the region defaults to the environment's own."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from scripts.infra import diff, iam, parameters
from scripts.infra.changeset import ChangeSets, InfraError, Plan
from scripts.infra.template import target as target_for
from scripts.release import targets
from scripts.release.environments import DEFAULT_PATH, DefinitionError, deployable, load
from scripts.release.targets.base import DeployError, ServiceState

TARGETS = ("staging", "production", "shared")
ENVIRONMENTS_HELP = "the environments file (default env/environments.toml; another one only to rehearse a change)"
Out = Callable[[str], None]


def _print(line: str) -> None:
    print(line, flush=True)


def _session(region: str):
    import boto3

    session = boto3.session.Session(region_name=os.environ.get("AWS_REGION") or region)
    if session.get_credentials() is None:
        raise InfraError("no AWS credentials (AWS_PROFILE, or the OIDC role in CI): nothing was planned")
    return session


def _region(name: str, path: Path) -> str:
    envs = load(path)
    return envs[name].region if name in envs else envs["staging"].region


def _running(session, target, changesets: ChangeSets, path: Path) -> ServiceState | None:
    """The environment's service as its deploy target (App Runner or ECS Express Mode) describes it."""
    status = changesets.stack_status(target.stack)
    if status in (None, "REVIEW_IN_PROGRESS"):
        return None
    env = deployable(target.name, path)
    try:
        return targets.connect(env, session, None).describe(env.service)
    except DeployError:
        return None


def plan(args: argparse.Namespace, session, out: Out) -> int:
    target = target_for(args.target)
    s3 = session.client("s3") if args.template_bucket else None
    changesets = ChangeSets(session.client("cloudformation"), s3=s3, out=out)
    role_arn = None
    if target.name == "shared":
        repository = args.github_repository or os.environ.get("GITHUB_REPOSITORY", "")
        if not repository:
            raise InfraError("shared: pass --github-repository OWNER/NAME (the repository whose workflows deploy)")
        params = parameters.shared(repository, args.environments)
    else:
        env = deployable(target.name, args.environments)
        running = _running(session, target, changesets, args.environments)
        if running is not None and args.image:
            raise InfraError(f"{env.service} exists: images reach it through `nox -s deploy`, not --image")
        params = parameters.environment(env, running, args.image, args.environments)
        account = session.client("sts").get_caller_identity()["Account"]
        role_arn = f"arn:aws:iam::{account}:role/mv-os-cfn-{target.name}"
    for name in parameters.placeholders(params):
        out(f"warning: {name} is still a placeholder in env/environments.toml; apply will refuse this plan")
    name = args.name or time.strftime("plan-%Y%m%d-%H%M%S", time.gmtime())
    result = changesets.plan(target, params, name=name, role_arn=role_arn, template_bucket=args.template_bucket)
    _report(args, target.name, target.stack, result, out)
    return 0


def _report(
    args: argparse.Namespace, name: str, stack: str, result: Plan | None, out: Out, offline: bool = False
) -> None:
    if result is None:
        out(f"no changes: {stack} already matches the template and env/environments.toml")
        summary = f"### Infrastructure plan: {name} (`{stack}`)\n\nNo changes.\n"
    else:
        for line in result.lines():
            out(line)
        if not offline:
            out(f"apply with: nox -s infra -- apply {name} {result.name}")
        summary = result.markdown(name)
    if args.summary:
        with open(args.summary, "a", encoding="utf-8") as fh:
            fh.write(summary)
    if getattr(args, "github_output", None):
        with open(args.github_output, "a", encoding="utf-8") as fh:
            fh.write(f"change-set={result.name if result else ''}\n")


def apply(args: argparse.Namespace, session, out: Out) -> int:
    target = target_for(args.target)
    changesets = ChangeSets(session.client("cloudformation"), out=out)

    def not_deployed_since(plan: Plan) -> list[str]:
        if target.name == "shared":
            return []
        running = _running(session, target, changesets, args.environments)
        stale = parameters.deployed_since(plan.parameters, running)
        return [f"the service was deployed since this plan ({', '.join(stale)} changed)"] if stale else []

    changesets.apply(target, args.change_set, allowed=set(args.allow_replace or ()), check=not_deployed_since)
    out(f"applied {args.change_set}")
    return 0


def offline_diff(args: argparse.Namespace, out: Out) -> int:
    target = target_for(args.target)
    result = diff.offline(target, args.base)
    if not result.changes:
        result = None
    _report(args, target.name, target.stack, result, out, offline=True)
    return 0


def check_iam(args: argparse.Namespace, out: Out) -> int:
    if args.check:
        problems = iam.differences()
        for problem in problems:
            out(f"infra/iam/{problem}")
        if problems:
            out("infra/iam is rendered from infra/cloudformation/shared.yaml: run `nox -s infra -- iam`")
        return 1 if problems else 0
    for change in iam.render():
        out(change)
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nox -s infra --", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    pp = sub.add_parser("plan", help="create and print a change set (changes nothing)")
    pp.add_argument("target", choices=TARGETS)
    pp.add_argument("--image", help="<repository>@sha256:<digest> for a service that does not exist yet")
    pp.add_argument("--github-repository", help="OWNER/NAME (shared stack; default $GITHUB_REPOSITORY)")
    pp.add_argument("--name", help="change set name (default plan-<UTC time>)")
    pp.add_argument(
        "--template-bucket", help="S3 bucket to send the template through (needed over 51,200 bytes of compact JSON)"
    )
    pp.add_argument("--summary", type=Path, help="append the plan as Markdown (e.g. $GITHUB_STEP_SUMMARY)")
    pp.add_argument("--github-output", type=Path, help="append change-set=<arn> (e.g. $GITHUB_OUTPUT)")
    pp.add_argument("--environments", type=Path, default=DEFAULT_PATH, help=ENVIRONMENTS_HELP)
    pa = sub.add_parser("apply", help="execute a change set that plan made")
    pa.add_argument("target", choices=TARGETS)
    pa.add_argument("change_set", help="the change set name (or ARN) that plan printed")
    pa.add_argument(
        "--allow-replace", action="append", metavar="LOGICAL_ID", help="let this stateful resource be replaced"
    )
    pa.add_argument("--environments", type=Path, default=DEFAULT_PATH, help=ENVIRONMENTS_HELP)
    pd = sub.add_parser("diff", help="offline: what HEAD changes in a stack against a base commit (no AWS)")
    pd.add_argument("target", choices=TARGETS)
    pd.add_argument("--base", required=True, help="the commit to compare with (a pull request's base)")
    pd.add_argument("--summary", type=Path, help="append the diff as Markdown (e.g. $GITHUB_STEP_SUMMARY)")
    pi = sub.add_parser("iam", help="render infra/iam/*.json from infra/cloudformation/shared.yaml")
    pi.add_argument("--check", action="store_true", help="only report differences (exit 1 if any)")
    return p


def main(argv: list[str] | None = None, *, session_for=_session, out: Out = _print) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "iam":
            return check_iam(args, out)
        if args.command == "diff":
            return offline_diff(args, out)
        session = session_for(_region(args.target, args.environments))
        return (plan if args.command == "plan" else apply)(args, session, out)
    except (InfraError, parameters.ParameterError, DefinitionError) as exc:
        out(f"{args.command} {getattr(args, 'target', '')}: {exc}")
        return 1
    except (ClientError, BotoCoreError) as exc:
        out(f"{args.command} {getattr(args, 'target', '')}: AWS said: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
