"""`python -m scripts.release <command>`: plan, deploy, record, smoke, rollback, audit, validated-digest.

Arguments only: the flows live in scripts/release/flows.py and rollback.py.  The nox sessions of the same names
call this; the usage lines are in scripts/release/usage.py."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from scripts.release import flows
from scripts.release import rollback as rollback_mod
from scripts.release.environments import DefinitionError, budget, deployable, load
from scripts.release.gates import Context
from scripts.release.summary import Summary
from scripts.release.usage import COMMAND_ENVS, ENVS, USAGE


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.release",
        description=__doc__.splitlines()[0],
        epilog="\n".join(USAGE.values()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("plan", help="evaluate every gate and print the deploy target's request; changes nothing")
    p.add_argument("environment", choices=ENVS)
    p.add_argument("--image", help="<repo>@sha256:<digest> (default: the staging-validated one for this tree)")
    p = sub.add_parser("deploy", help="gates, deploy by digest, smoke, then production history / rollback")
    p.add_argument("environment", choices=ENVS)
    p.add_argument("--image", required=True, help="<repo>@sha256:<digest>")
    p.add_argument("--redeploy", action="store_true", help="start a deployment even if nothing changed")
    p = sub.add_parser("record", help="check staging runs --image for this commit and passes smoke; record it")
    p.add_argument("environment", choices=COMMAND_ENVS["record"])
    p.add_argument("--image", required=True, help="<repo>@sha256:<digest>")
    p = sub.add_parser("smoke", help="smoke-test a running service")
    p.add_argument("environment", choices=ENVS)
    p.add_argument("--url", help="base URL (default: the service URL the deploy target reports)")
    p.add_argument("--digest", help="sha256:<digest> /version must report (default: what the service runs)")
    p = sub.add_parser("rollback", help="go back to the previous image (or --to DIGEST)")
    p.add_argument("environment", choices=ENVS)
    p.add_argument("--to", help="sha256:<digest> or <repo>@sha256:<digest>")
    p = sub.add_parser("audit", help="prove staging/production isolation from what AWS reports")
    p.add_argument("--values", action="store_true", help="also compare salted fingerprints of secret values")
    p = sub.add_parser("validated-digest", help="print the image staging validated for HEAD's tree")
    p.add_argument("environment", choices=ENVS)
    return parser


def main(argv: list[str] | None = None, repo: Path | None = None) -> int:
    """The git checkout is the current directory (nox runs from the repository root)."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "audit":
            return flows.audit_command([e for e in load().values() if e.deployable], args.values)
        env, limits = deployable(args.environment), budget()
    except DefinitionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    aws, missing = flows.connect(env)
    if aws is not None:
        aws.target.timeout = limits.rollback if args.command == "rollback" else limits.deploy
    ctx = Context(env=env, repo=repo or Path.cwd(), image_text=getattr(args, "image", None), aws=aws)
    ctx.idle_budget = limits.idle
    if missing:
        ctx.aws_missing = missing
    if args.command == "smoke":
        return flows.smoke_command(env, args.url, args.digest, aws)
    if args.command == "validated-digest":
        return flows.validated_digest(ctx)
    summary = Summary(args.command, env.name)
    out = summary.tee(flows.print_line)
    if args.command == "plan":
        code = flows.plan(ctx, out)
    elif args.command == "deploy":
        ctx.redeploy = args.redeploy
        code = flows.deploy(ctx, out)
    elif args.command == "record":
        code = flows.record(ctx, out)
    else:
        code = rollback_mod.rollback(ctx, args.to, out, flows.default_smoke, flows.append_history)
    summary.url = ctx.service.https_url if ctx.service else ""
    summary.digest = ctx.image.digest if ctx.image else ""
    summary.write(code)
    return code
