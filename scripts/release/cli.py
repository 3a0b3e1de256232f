"""`python -m scripts.release <command>`: plan, deploy, smoke, rollback, audit, validated-digest.

The nox sessions of the same names call this.  Each flow is a function taking a `Context` (and injectable
smoke runner / output), so tests drive them with Stubber- or moto-backed clients."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from scripts.release import audit as audit_mod
from scripts.release import smoke as smoke_mod
from scripts.release.apprunner import AppRunnerTarget, DeployError, DeployFailed, is_redeploy, rollback_request
from scripts.release.environments import DefinitionError, Environment, deployable, load
from scripts.release.gates import Aws, Context, Result, evaluate, head_tree
from scripts.release.images import DIGEST, ImageRef, ImageRefError
from scripts.release.record import RecordError

Out = Callable[[str], None]
SmokeRunner = Callable[[str, str, str | None], list[Result]]
CREDENTIALS_MISSING = "AWS credentials are missing (set AWS_PROFILE, or run in the deploy workflow's OIDC role)"


def _print(line: str) -> None:
    print(line, flush=True)


def connect(env: Environment) -> tuple[Aws | None, str]:
    """boto3 clients from the standard SDK environment (AWS_PROFILE, AWS_ENDPOINT_URL_*, ...), in the
    environment's region.  No credentials -> (None, reason): every AWS gate then fails closed."""
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(region_name=env.region)
    if session.get_credentials() is None:
        return None, CREDENTIALS_MISSING
    config = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=30)
    return (
        Aws(
            target=AppRunnerTarget(session.client("apprunner", config=config)),
            secretsmanager=session.client("secretsmanager", config=config),
            ecr=session.client("ecr", config=config),
            sts=session.client("sts", config=config),
        ),
        "",
    )


def _default_smoke(url: str, environment: str, digest: str | None) -> list[Result]:
    return smoke_mod.run(url, environment, digest)


def _gates(ctx: Context, out: Out) -> bool:
    results = evaluate(ctx)
    for result in results:
        out(result.line())
    return all(r.ok for r in results)


# -- flows -----------------------------------------------------------------------------------------------
def plan(ctx: Context, out: Out = _print) -> int:
    """Every gate, then the exact update_service request.  Mutates nothing."""
    if ctx.env.name == "production" and not ctx.image_text and ctx.aws is not None:
        found = _validated_image(ctx)
        if found:
            out(f"image: {found} (the digest staging validated for this tree)")
            ctx.image_text = found
    ok = _gates(ctx, out)
    out("update_service request (secrets by ARN, never by value):")
    out(json.dumps(ctx.request, indent=2, sort_keys=True))
    out(f"plan: {'all gates pass' if ok else 'REFUSED'} for {ctx.env.name}")
    return 0 if ok else 1


def deploy(ctx: Context, out: Out = _print, smoke: SmokeRunner = _default_smoke) -> int:
    """Gates -> update_service -> wait for that operation -> smoke -> record (staging) / rollback (production)."""
    if not _gates(ctx, out):
        out(f"deploy REFUSED: nothing was changed on {ctx.env.service}")
        return 1
    assert ctx.aws is not None and ctx.service is not None and ctx.image is not None and ctx.request is not None
    target, previous, image = ctx.aws.target, ctx.service, ctx.image
    try:
        if is_redeploy(ctx.request, previous):
            operation = target.redeploy(previous.arn)
            out(f"start_deployment: operation {operation} redeploys {image.digest} (same image; fresh secret values)")
        else:
            operation = target.start(ctx.request)
            out(f"update_service: operation {operation} deploys {image.digest} to {ctx.env.service}")
        target.wait_for(previous.arn, operation)
    except DeployFailed as exc:
        out(f"deploy FAILED: {exc}. Running: {previous.image}")
        return 1
    except DeployError as exc:
        out(f"deploy FAILED: {exc}")
        return 1
    out(f"deployed {image.digest} to {ctx.env.service}; smoke-testing {previous.https_url}")
    checks = smoke(previous.https_url, ctx.env.node_env, image.digest)
    for check in checks:
        out(check.line())
    smoke_ok = all(c.ok for c in checks)
    if ctx.env.name == "staging":
        if not smoke_ok:
            out(
                f"staging smoke FAILED: no staging-validated record was written, so {image.digest} can never reach "
                "production. Staging keeps running it for inspection; fix it on develop and deploy again."
            )
            return 1
        tree = head_tree(ctx.repo) or ""
        try:
            tag = ctx.record.write(tree, image.digest)
        except (RecordError, Exception) as exc:  # noqa: BLE001 - any failure: not validated, say so
            out(f"staging smoke passed but the record could not be written: {exc}")
            return 1
        out(f"recorded {ctx.env.ecr_repository}:{tag} -> {image.digest}: this tree may now go to production")
        return 0
    if smoke_ok:
        out(f"production runs {image.digest}")
        return 0
    return _roll_back_after_smoke(ctx, previous, out)


def _roll_back_after_smoke(ctx: Context, previous, out: Out) -> int:
    assert ctx.aws is not None and ctx.image is not None
    new, old = ctx.image.digest, previous.image.rsplit("@", 1)[-1]
    if previous.image == ctx.image.ref:
        out(
            f"production smoke FAILED after a redeploy of the same digest {new}: there is no other image to go back "
            "to. If a secret was just rotated, restore its previous value (AWSPREVIOUS) and redeploy."
        )
        return 1
    out(f"production smoke FAILED for {new}: rolling back to {old}")
    try:
        operation = ctx.aws.target.start(rollback_request(previous))
        out(f"update_service: rollback operation {operation}")
        ctx.aws.target.wait_for(previous.arn, operation)
    except DeployError as exc:
        out(f"ROLLBACK FAILED: production smoke failed for {new} and going back to {old} failed too: {exc}")
        return 1
    out(f"rolled back: production smoke failed for {new}; production runs {old} again")
    return 1


def rollback(ctx: Context, to: str | None, out: Out = _print, smoke: SmokeRunner = _default_smoke) -> int:
    """Deploy an image that ran before: `--to DIGEST`, else the one recorded as MV_OS_PREVIOUS_IMAGE."""
    ctx.rollback = True
    if ctx.aws is None:
        out(f"FAIL aws-credentials: {ctx.aws_missing}; cannot roll back")
        return 1
    state = ctx.aws.target.describe(ctx.env.service)
    try:
        if to is None:
            target_ref = state.variables.get("MV_OS_PREVIOUS_IMAGE")
            if not target_ref:
                out(f"{ctx.env.service} has no MV_OS_PREVIOUS_IMAGE; say where to go: --to sha256:<digest>")
                return 1
            ctx.git_sha = state.variables.get("MV_OS_PREVIOUS_GIT_SHA", "unknown")
            image = ImageRef.parse(target_ref)
        elif DIGEST.fullmatch(to):
            image = ImageRef.parse(state.image).with_digest(to)
            ctx.git_sha = "unknown"
        else:
            image = ImageRef.parse(to)
            ctx.git_sha = "unknown"
    except ImageRefError as exc:
        out(f"rollback target: {exc}")
        return 1
    ctx.image_text = image.ref
    out(f"rollback {ctx.env.service}: {state.image.rsplit('@', 1)[-1]} -> {image.digest}")
    if not _gates(ctx, out):
        out("rollback REFUSED: nothing was changed")
        return 1
    assert ctx.request is not None
    try:
        operation = ctx.aws.target.start(ctx.request)
        ctx.aws.target.wait_for(state.arn, operation)
    except DeployError as exc:
        out(f"rollback FAILED: {exc}")
        return 1
    checks = smoke(state.https_url, ctx.env.node_env, image.digest)
    for check in checks:
        out(check.line())
    ok = all(c.ok for c in checks)
    out(f"rolled back to {image.digest}" + ("" if ok else " but smoke FAILED: the service needs attention"))
    return 0 if ok else 1


def _validated_image(ctx: Context) -> str | None:
    tree = head_tree(ctx.repo)
    if tree is None or ctx.aws is None:
        return None
    try:
        digest = ctx.record.read(tree)
        return f"{ctx.record.repository_uri()}@{digest}" if digest else None
    except Exception:  # noqa: BLE001 - plan reports it through the gates
        return None


def validated_digest(ctx: Context, out: Out = _print, err: Out | None = None) -> int:
    """Print `<repository uri>@sha256:...` that staging validated for HEAD's tree (for the production job)."""
    err = err or (lambda line: print(line, file=sys.stderr, flush=True))
    if ctx.aws is None:
        err(f"{ctx.aws_missing}; cannot read the staging-validated record")
        return 1
    tree = head_tree(ctx.repo)
    found = _validated_image(ctx)
    if not found:
        err(
            f"tree {tree} has no staging-validated image: deploy develop to staging first, then merge develop "
            "into main without other changes"
        )
        return 1
    out(found)
    return 0


def smoke_command(env: Environment, url: str | None, digest: str | None, aws: Aws | None, out: Out = _print) -> int:
    """Smoke the service URL (from App Runner, or --url).  /version must report --digest, else what the service
    runs; with --url and no AWS access, any sha256 digest is accepted."""
    if aws is not None and (url is None or digest is None):
        state = aws.target.describe(env.service)
        url = url or state.https_url
        digest = digest or state.image.rsplit("@", 1)[-1]
    if url is None:
        out(f"FAIL aws-credentials: {CREDENTIALS_MISSING}; give --url to smoke without AWS")
        return 1
    checks = smoke_mod.run(url, env.node_env, digest)
    for check in checks:
        out(check.line())
    return 0 if all(c.ok for c in checks) else 1


def audit_command(envs: list[Environment], values: bool, out: Out = _print, connector=connect) -> int:
    results = audit_mod.audit(envs, lambda e: connector(e)[0], values=values)
    for result in results:
        out(result.line())
    return 0 if all(r.ok for r in results) else 1


# -- entry point -----------------------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m scripts.release", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    envs = ["staging", "production"]
    p = sub.add_parser("plan", help="evaluate every gate and print the App Runner request; changes nothing")
    p.add_argument("environment", choices=envs)
    p.add_argument("--image", help="<repo>@sha256:<digest> (production: defaults to the staging-validated one)")
    p = sub.add_parser("deploy", help="gates, deploy by digest, smoke, then record (staging) / rollback (prod)")
    p.add_argument("environment", choices=envs)
    p.add_argument("--image", required=True, help="<repo>@sha256:<digest>")
    p.add_argument("--wait-idle", type=float, default=600.0, help="seconds to wait for a running operation")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds to wait for the deployment")
    p = sub.add_parser("smoke", help="smoke-test a running service")
    p.add_argument("environment", choices=envs)
    p.add_argument("--url", help="base URL (default: the App Runner service URL)")
    p.add_argument("--digest", help="sha256:<digest> /version must report (default: what the service runs)")
    p = sub.add_parser("rollback", help="go back to the previous image (or --to DIGEST)")
    p.add_argument("environment", choices=envs)
    p.add_argument("--to", help="sha256:<digest> or <repo>@sha256:<digest>")
    p.add_argument("--timeout", type=float, default=1800.0)
    p = sub.add_parser("audit", help="prove staging/production isolation from what AWS reports")
    p.add_argument("--values", action="store_true", help="also compare salted fingerprints of secret values")
    p = sub.add_parser("validated-digest", help="print the image staging validated for HEAD's tree")
    p.add_argument("environment", choices=["production"])
    return parser


def main(argv: list[str] | None = None, repo: Path | None = None) -> int:
    """The git checkout is the current directory (nox runs from the repository root)."""
    args = _parser().parse_args(argv)
    repo = repo or Path.cwd()
    try:
        if args.command == "audit":
            return audit_command([e for e in load().values() if e.deployable], args.values)
        env = deployable(args.environment)
    except DefinitionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    aws, missing = connect(env)
    if aws is not None and hasattr(args, "timeout"):
        aws.target.timeout = args.timeout
    ctx = Context(env=env, repo=repo, image_text=getattr(args, "image", None), aws=aws)
    if missing:
        ctx.aws_missing = missing
    if args.command == "plan":
        return plan(ctx)
    if args.command == "deploy":
        ctx.idle_budget = args.wait_idle
        return deploy(ctx)
    if args.command == "smoke":
        return smoke_command(env, args.url, args.digest, aws)
    if args.command == "rollback":
        ctx.idle_budget = 600.0
        return rollback(ctx, args.to)
    if args.command == "validated-digest":
        return validated_digest(ctx)
    raise AssertionError(args.command)
