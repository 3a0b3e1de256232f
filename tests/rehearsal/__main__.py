"""`python -m tests.rehearsal [--short] [--target apprunner|ecs-express]`: print `PASS <scenario>` /
`FAIL <scenario>: <reason>` for each scenario; exit 0 only if every one passes.  Nothing leaves 127.0.0.x: AWS is
moto, the deploy target (App Runner or ECS Express Mode) a local stand-in."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from tests.rehearsal.scenarios import SCENARIOS, SHORT, Failed


def run(scenarios, out=print, target: str = "apprunner") -> int:
    from moto import mock_aws

    from tests.rehearsal.world import World

    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY", "GITHUB_RUN_ID"):
        os.environ.pop(var, None)
    os.environ.update(
        AWS_ACCESS_KEY_ID="rehearsal", AWS_SECRET_ACCESS_KEY="rehearsal", AWS_DEFAULT_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
    )  # fmt: skip
    failures = 0
    with tempfile.TemporaryDirectory(prefix="mv-os-rehearsal-") as tmp, mock_aws():
        world = World(Path(tmp), target)
        notes: dict = {}
        try:
            for name, scenario in scenarios:
                started = time.monotonic()
                try:
                    scenario(world, notes)
                except Failed as exc:
                    failures += 1
                    out(f"FAIL {name}: {exc}")
                except Exception as exc:  # noqa: BLE001 - a broken scenario is a FAIL line, not a traceback
                    failures += 1
                    out(f"FAIL {name}: {type(exc).__name__}: {exc}")
                else:
                    out(f"PASS {name} ({time.monotonic() - started:.1f}s)")
        finally:
            world.close()
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nox -s rehearse --", description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help=f"only the first {SHORT} scenarios")
    parser.add_argument("--target", choices=("apprunner", "ecs-express"), default="apprunner", help="deploy target")
    args = parser.parse_args(argv)
    return run(SCENARIOS[:SHORT] if args.short else SCENARIOS, target=args.target)


if __name__ == "__main__":
    sys.exit(main())
