"""Rollbacks: automatic (production smoke failed after a deploy) and manual (`nox -s rollback`).

Production goes back only to a digest its own history says it ran and smoke-tested, with the configuration it
ran with then (scripts/release/record.py).  Staging goes back to MV_OS_PREVIOUS_IMAGE or any digest given."""

from __future__ import annotations

from collections.abc import Callable

from scripts.release.gates import Context, Result, gates_pass, ran_on_production
from scripts.release.images import DIGEST, ImageRef, ImageRefError
from scripts.release.smoke import login_for
from scripts.release.targets.base import DeployError, ServiceState

Out = Callable[[str], None]


def smoke_ok(url: str, ctx: Context, digest: str, out: Out, smoke: Callable[..., list[Result]]) -> bool:
    """Run the smoke checks against `url` (logged in as the smoke user where the environment has one), print
    each line; True only if all pass."""
    checks = smoke(url, ctx.env.node_env, digest, login_for(ctx.env, ctx.aws.secretsmanager if ctx.aws else None))
    for check in checks:
        out(check.line())
    return all(c.ok for c in checks)


def roll_back_after_smoke(ctx: Context, previous: ServiceState, out: Out, record: Callable[..., int]) -> int:
    """Production smoke failed for the new image: put back exactly what ran before, then record that it runs."""
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
        target = ctx.aws.target
        operation = target.start(target.rollback_request(previous))
        out(f"{target.update_call}: rollback operation {operation}")
        ctx.aws.target.wait_for(previous.arn, operation)
    except DeployError as exc:
        out(f"ROLLBACK FAILED: production smoke failed for {new} and going back to {old} failed too: {exc}")
        return 1
    record(ctx, "rollback", out, ctx.aws.target.rollback_request(previous))
    out(f"rolled back: production smoke failed for {new}; production runs {old} again")
    return 1


def _target(ctx: Context, state: ServiceState, to: str | None, out: Out) -> ImageRef | None:
    """The image to go back to: --to (a digest or a full reference), else production's previous history entry,
    else (staging) MV_OS_PREVIOUS_IMAGE."""
    if to is not None:
        if DIGEST.fullmatch(to):
            return ImageRef.parse(state.image).with_digest(to)
        return ImageRef.parse(to)
    if ctx.env.name == "production":
        entry = ctx.history.previous()
        if entry is None:
            out("production's history has no earlier digest to go back to; say where to go: --to sha256:<digest>")
            return None
        return ImageRef.parse(entry.image)
    previous = state.variables.get("MV_OS_PREVIOUS_IMAGE")
    if not previous:
        out(f"{ctx.env.service} has no MV_OS_PREVIOUS_IMAGE; say where to go: --to sha256:<digest>")
        return None
    ctx.git_sha = state.variables.get("MV_OS_PREVIOUS_GIT_SHA", "unknown")
    return ImageRef.parse(previous)


def rollback(ctx: Context, to: str | None, out: Out, smoke, record: Callable[..., int]) -> int:
    """Deploy an image that ran before, wait for it, smoke it; production appends it to its history."""
    ctx.rollback = True
    if ctx.aws is None:
        out(f"FAIL aws-credentials: {ctx.aws_missing}; cannot roll back")
        return 1
    state = ctx.aws.target.describe(ctx.env.service)
    try:
        image = _target(ctx, state, to, out)
    except ImageRefError as exc:
        out(f"rollback target: {exc}")
        return 1
    except Exception as exc:  # noqa: BLE001 - an unreadable or tampered history fails closed
        out(f"FAIL production-history: {type(exc).__name__}: {exc}")
        return 1
    if image is None:
        return 1
    ctx.image_text = image.ref
    out(f"rollback {ctx.env.service}: {state.image.rsplit('@', 1)[-1]} -> {image.digest}")
    if ctx.env.name == "production":
        # Find the history entry first: its configuration is what gets sent (the gates check it again).
        ctx.image = image
        if ran_on_production(ctx).ok and ctx.rollback_to is not None:
            ctx.request = ctx.aws.target.recorded_request(
                state, image.ref, ctx.rollback_to.configuration, ctx.env.health_check_path
            )
        ctx.image = None
    if not gates_pass(ctx, out):
        out("rollback REFUSED: nothing was changed")
        return 1
    assert ctx.request is not None
    try:
        operation = ctx.aws.target.start(ctx.request)
        ctx.aws.target.wait_for(state.arn, operation)
    except DeployError as exc:
        out(f"rollback FAILED: {exc}")
        return 1
    ok = smoke_ok(state.https_url, ctx, image.digest, out, smoke)
    code = record(ctx, "rollback", out, ctx.request) if ok and ctx.env.name == "production" else 0
    out(f"rolled back to {image.digest}" + ("" if ok else " but smoke FAILED: the service needs attention"))
    return code if ok else 1
