"""The release flows: plan, deploy, record, validated-digest, smoke, audit.  Rollbacks are in rollback.py.

Each flow takes a `Context` (and an injectable smoke runner / output), so tests and the rehearsal drive them with
Stubber-, moto- or stand-in-backed clients.  scripts/release/cli.py only parses arguments and calls these."""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Callable
from typing import Any

from scripts.release import audit as audit_mod
from scripts.release import smoke as smoke_mod
from scripts.release import targets
from scripts.release.environments import Environment
from scripts.release.gates import (
    Aws,
    Context,
    Result,
    branch_matches_environment,
    gates_pass,
    head_sha,
    head_tree,
    image_by_digest,
)
from scripts.release.images import repository_uri
from scripts.release.rollback import roll_back_after_smoke, smoke_ok
from scripts.release.summary import tail
from scripts.release.targets.base import DeployError, DeployFailed, ServiceState

Out = Callable[[str], None]
SmokeRunner = Callable[[str, str, str | None, smoke_mod.Login | Result | None], list[Result]]
CREDENTIALS_MISSING = "AWS credentials are missing (set AWS_PROFILE, or run in the deploy workflow's OIDC role)"


def print_line(line: str) -> None:
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
    clients = {name: session.client(name, config=config) for name in ("secretsmanager", "ecr", "sts", "ssm", "logs")}
    return Aws(target=targets.connect(env, session, config), **clients), ""


def default_smoke(
    url: str, environment: str, digest: str | None, login: smoke_mod.Login | Result | None
) -> list[Result]:
    return smoke_mod.run(url, environment, digest, login)


def show_log(ctx: Context, state: ServiceState, out: Out) -> None:
    """The service's last application log lines, where a failed deploy's reason usually is."""
    group = ctx.aws.target.log_group(state) if ctx.aws else None
    lines = tail(ctx.aws.logs if ctx.aws and group else None, state.arn, group=group)
    if lines:
        out(f"last {len(lines)} lines of {ctx.env.service}'s application log:")
        for line in lines:
            out(line)


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


# -- plan ------------------------------------------------------------------------------------------------------
def plan(ctx: Context, out: Out = print_line) -> int:
    """Every gate, then the exact request the target's update call would get.  Mutates nothing."""
    if not ctx.image_text and ctx.aws is not None:
        found = validated_image(ctx)
        if found:
            out(f"image: {found} (the digest staging validated for this tree)")
            ctx.image_text = found
    ok = gates_pass(ctx, out)
    target = ctx.aws.target if ctx.aws is not None else targets.shape(ctx.env)
    out(f"{ctx.env.target}: {target.update_call} request (secrets by ARN, never by value):")
    out(json.dumps(ctx.request, indent=2, sort_keys=True))
    out(f"plan: {'all gates pass' if ok else 'REFUSED'} for {ctx.env.name}")
    return 0 if ok else 1


# -- deploy ----------------------------------------------------------------------------------------------------
def deploy(ctx: Context, out: Out = print_line, smoke: SmokeRunner = default_smoke) -> int:
    """Gates -> the target's update call -> wait for that operation -> smoke -> production history / rollback.

    Staging: a tree that already has a staging-validated record deploys the recorded digest (never a second build
    of the same tree), and a re-run that would change nothing is skipped."""
    if ctx.env.name == "staging":
        _use_recorded_digest(ctx, out)
    if not gates_pass(ctx, out):
        out(f"deploy REFUSED: nothing was changed on {ctx.env.service}")
        return 1
    assert ctx.aws is not None and ctx.service is not None and ctx.image is not None and ctx.request is not None
    target, previous, image = ctx.aws.target, ctx.service, ctx.image
    redeploy = target.is_redeploy(ctx.request, previous)
    if redeploy and ctx.env.name == "staging" and not ctx.redeploy:
        out(f"{ctx.env.service} already runs {image.digest} with this exact configuration: nothing to do")
        return 0
    try:
        if redeploy:
            operation = target.redeploy(previous.arn)
            out(f"start_deployment: operation {operation} redeploys {image.digest} (same image; fresh secret values)")
        else:
            operation = target.start(ctx.request)
            out(f"{target.update_call}: operation {operation} deploys {image.digest} to {ctx.env.service}")
        target.wait_for(previous.arn, operation)
    except DeployFailed as exc:
        show_log(ctx, previous, out)
        out(f"deploy FAILED: {exc}. Running: {previous.image}")
        return 1
    except DeployError as exc:
        show_log(ctx, previous, out)
        out(f"deploy FAILED: {exc}")
        return 1
    out(f"deployed {image.digest} to {ctx.env.service}; smoke-testing {previous.https_url}")
    passed = smoke_ok(previous.https_url, ctx, image.digest, out, smoke)
    if ctx.env.name == "staging":
        if not passed:
            show_log(ctx, previous, out)
            out(
                f"staging smoke FAILED: no staging-validated record will be written, so {image.digest} can never "
                "reach production. Staging keeps running it for inspection; fix it on develop and deploy again."
            )
            return 1
        out(f"staging runs {image.digest} and passed smoke; the record job (`nox -s record -- staging`) records it")
        return 0
    if passed:
        sent = target.rollback_request(previous) if redeploy else ctx.request
        return append_history(ctx, "redeploy" if redeploy else "deploy", out, sent)
    show_log(ctx, previous, out)
    return roll_back_after_smoke(ctx, previous, out, append_history)


def _use_recorded_digest(ctx: Context, out: Out) -> None:
    """Staging: switch to the recorded digest for this tree if there is one (the back-merge, a re-run, a revert
    of a revert), so the same tree never becomes a second, unrecordable digest."""
    if ctx.aws is None:
        return
    tree = head_tree(ctx.repo)
    try:
        found = ctx.record.read(tree) if tree else None
    except Exception as exc:  # noqa: BLE001 - the gates report AWS failures; a tampered record is refused here
        out(f"cannot read the staging-validated record for this tree ({type(exc).__name__}: {exc})")
        return
    if found is None:
        return
    recorded = f"{repository_uri(ctx.aws.ecr, ctx.env.ecr_repository)}@{found.digest}"
    if ctx.image_text != recorded:
        out(
            f"tree {tree[:12]} was already validated with {found.digest}: deploying that digest "
            f"(not {ctx.image_text or 'a new build'}); a tree is built and validated once"
        )
        ctx.image_text = recorded


def append_history(ctx: Context, kind: str, out: Out, request: dict[str, Any]) -> int:
    """Production ran `request` and it passed smoke: append it to the history (what rollbacks may go back to)."""
    assert ctx.aws is not None
    sent = ctx.aws.target.view(request)
    image, configuration = sent.image, sent.configuration
    digest = image.rsplit("@", 1)[-1]
    try:
        entry = ctx.history.append(
            digest=digest,
            image=image,
            tree=(ctx.rollback_to.tree if ctx.rollback_to else head_tree(ctx.repo)) or "unknown",
            git_sha=configuration.get("RuntimeEnvironmentVariables", {}).get("GIT_SHA", "unknown"),
            run=ctx.run,
            kind=kind,
            at=now(),
            configuration=configuration,
        )
    except Exception as exc:  # noqa: BLE001 - production runs it; say the history did not follow
        out(f"production runs {digest}, but the production history could not be written: {exc}")
        return 1
    out(f"production runs {digest} (history entry {entry.seq}, {kind})")
    return 0


# -- record (the separate recorder job) ---------------------------------------------------------------------------
def record(ctx: Context, out: Out = print_line, smoke: SmokeRunner = default_smoke) -> int:
    """Write the staging-validated record for HEAD's tree, only after checking for itself that staging runs the
    given digest, built from this commit, and passes smoke.  Run by its own role, which can do nothing else."""
    if ctx.aws is None:
        out(f"FAIL aws-credentials: {ctx.aws_missing}; cannot record")
        return 1
    checks = [branch_matches_environment(ctx), image_by_digest(ctx)]
    for check in checks:
        out(check.line())
    if not all(c.ok for c in checks):
        out("record REFUSED: nothing was written")
        return 1
    assert ctx.image is not None
    state = ctx.aws.target.describe(ctx.env.service)
    head = head_sha(ctx.repo)
    problems = []
    if state.status != "RUNNING":
        problems.append(f"{ctx.env.service} is {state.status}")
    if state.image != ctx.image.ref:
        problems.append(f"{ctx.env.service} runs {state.image.rsplit('@', 1)[-1]}, not {ctx.image.digest}")
    if state.variables.get("GIT_SHA") != head:
        problems.append(f"{ctx.env.service} runs commit {state.variables.get('GIT_SHA')}, not {head[:12]}")
    if problems:
        out(f"FAIL staging-runs-it: {'; '.join(problems)}")
        out("record REFUSED: nothing was written")
        return 1
    out(f"PASS staging-runs-it: {ctx.image.digest} for {head[:12]}")
    if not smoke_ok(state.https_url, ctx, ctx.image.digest, out, smoke):
        out("record REFUSED: staging smoke failed, nothing was written")
        return 1
    tree = head_tree(ctx.repo) or ""
    try:
        found = ctx.record.write(tree, ctx.image.digest, head, ctx.run)
    except Exception as exc:  # noqa: BLE001 - any failure: not validated, say so
        out(f"record FAILED: {exc}")
        return 1
    out(f"recorded staging-validated/{tree} -> {found.digest}: this tree may now go to production")
    return 0


# -- validated-digest, smoke, audit -------------------------------------------------------------------------------
def validated_image(ctx: Context) -> str | None:
    tree = head_tree(ctx.repo)
    if tree is None or ctx.aws is None:
        return None
    try:
        found = ctx.record.read(tree)
        return f"{repository_uri(ctx.aws.ecr, ctx.env.ecr_repository)}@{found.digest}" if found else None
    except Exception:  # noqa: BLE001 - plan reports it through the gates
        return None


def validated_digest(ctx: Context, out: Out = print_line, err: Out | None = None) -> int:
    """Print `<repository uri>@sha256:...` that staging validated for HEAD's tree.  Production deploys it;
    staging deploys it again instead of building the same tree twice."""
    err = err or (lambda line: print(line, file=sys.stderr, flush=True))
    if ctx.aws is None:
        err(f"{ctx.aws_missing}; cannot read the staging-validated record")
        return 1
    tree = head_tree(ctx.repo)
    found = validated_image(ctx)
    if not found:
        err(
            f"tree {tree} has no staging-validated image: deploy develop to staging first, then merge develop "
            "into main without other changes"
        )
        return 1
    out(found)
    return 0


def smoke_command(env: Environment, url: str | None, digest: str | None, aws: Aws | None, out: Out = print_line) -> int:
    """Smoke the service URL (from App Runner, or --url).  /version must report --digest, else what the service
    runs; with --url and no AWS access, any sha256 digest is accepted."""
    if aws is not None and (url is None or digest is None):
        state = aws.target.describe(env.service)
        url = url or state.https_url
        digest = digest or state.image.rsplit("@", 1)[-1]
    if url is None:
        out(f"FAIL aws-credentials: {CREDENTIALS_MISSING}; give --url to smoke without AWS")
        return 1
    checks = smoke_mod.run(url, env.node_env, digest, smoke_mod.login_for(env, aws.secretsmanager if aws else None))
    for check in checks:
        out(check.line())
    return 0 if all(c.ok for c in checks) else 1


def audit_command(envs: list[Environment], values: bool, out: Out = print_line, connector=connect) -> int:
    results = audit_mod.audit(envs, lambda e: connector(e)[0], values=values)
    for result in results:
        out(result.line())
    return 0 if all(r.ok for r in results) else 1
