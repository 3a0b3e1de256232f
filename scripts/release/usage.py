"""The release commands' usage lines, in one place: cli.py prints them and noxfile.py's sessions check their
arguments against them.  Standard library only, so noxfile.py can import it before any venv exists."""

from __future__ import annotations

ENVS = ("staging", "production")
USAGE = {
    "plan": "Usage: nox -s plan -- staging|production [--image <repo>@sha256:<digest>]",
    "deploy": "Usage: nox -s deploy -- staging|production --image <repo>@sha256:<digest> [--redeploy]",
    "record": "Usage: nox -s record -- staging --image <repo>@sha256:<digest>",
    "smoke": "Usage: nox -s smoke -- staging|production [--url URL] [--digest sha256:<digest>]",
    "rollback": "Usage: nox -s rollback -- staging|production [--to sha256:<digest>]",
    "validated-digest": "Usage: nox -s validated-digest -- staging|production",
    "audit": "Usage: nox -s audit [-- --values]",
    "status": "Usage: nox -s status [-- --json|--markdown]",
}
# The environments each command takes as its first argument.
COMMAND_ENVS = {"record": ("staging",), "audit": ()}
# Commands that cannot run without --image.
NEEDS_IMAGE = ("deploy", "record")


def check(command: str, args: list[str]) -> str | None:
    """None if `args` can be passed on, else the usage line to show."""
    allowed = COMMAND_ENVS.get(command, ENVS)
    if command == "audit":
        return None if args in ([], ["--values"]) else USAGE[command]
    if command == "status":
        return None if args in ([], ["--json"], ["--markdown"]) else USAGE[command]
    if not args or args[0] not in allowed:
        return USAGE[command]
    if command in NEEDS_IMAGE and "--image" not in args and not any(a.startswith("--image=") for a in args):
        return USAGE[command]
    return None
