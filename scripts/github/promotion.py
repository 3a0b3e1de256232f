"""The promotion check on pull requests into main: the head branch is develop (of this repository) and the
head commit was deployed to staging successfully.

"Successfully" is GitHub's own record of deploy-staging's last job: the record job (`environment: staging-record`)
creates a deployment for its commit, and its status turns `success` only when that job passed, which needs the
deploy job (build, deploy, smoke) before it and the staging-validated record written.  That is readable with the
pull request's own token
(`deployments: read`), with no AWS access.  The production gate later re-reads the authoritative record
(`nox -s validated-digest -- production`), keyed on the tree, before anything reaches production.

If the staging deployment of that commit has not finished (or not started: the test stage runs first), the
check waits up to --wait seconds, so a pull request opened right after a push to develop goes green by itself."""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections.abc import Callable

from scripts.github.api import GitHub, GitHubError, token_from_env

SOURCE_BRANCH = "develop"
ENVIRONMENT = "staging-record"
SHA_RE = re.compile(r"^[0-9a-f]{40}$")
PENDING = {"pending", "queued", "in_progress"}

Out = Callable[[str], None]


def staging_state(gh: GitHub, sha: str, environment: str = ENVIRONMENT) -> str:
    """'success' if any deployment of `sha` to the environment ever succeeded, 'pending' while one is still
    running (or none exists yet), else 'failure'."""
    deployments = gh.get(gh.repo_path("/deployments"), sha=sha, environment=environment, per_page=100) or []
    if not deployments:
        return "pending"
    running = False
    for deployment in deployments:
        statuses = gh.get(gh.repo_path(f"/deployments/{deployment['id']}/statuses"), per_page=100) or []
        states = [s.get("state") for s in statuses]
        if "success" in states:
            return "success"
        # Statuses come newest first; a deployment with none yet is still being set up.
        if not states or states[0] in PENDING:
            running = True
    return "pending" if running else "failure"


def check(
    gh: GitHub,
    *,
    head_ref: str,
    head_repo: str,
    sha: str,
    wait: float = 0,
    interval: float = 30,
    out: Out = print,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    if head_ref != SOURCE_BRANCH:
        out(
            f"FAIL source-branch: main only receives {SOURCE_BRANCH}, this pull request comes from {head_ref!r}. "
            f"Merge the change into {SOURCE_BRANCH} first (a hotfix too), let staging validate it, then open "
            f"{SOURCE_BRANCH} -> main."
        )
        return 1
    if head_repo != gh.repo:
        out(f"FAIL source-branch: the head is {head_repo}:{head_ref}, not {gh.repo}:{SOURCE_BRANCH} (a fork)")
        return 1
    if not SHA_RE.match(sha):
        out(f"FAIL staging-validated: {sha!r} is not a full commit SHA")
        return 1
    out(f"PASS source-branch: {gh.repo}:{SOURCE_BRANCH}")
    deadline = clock() + wait
    while True:
        state = staging_state(gh, sha)
        if state == "success":
            out(f"PASS staging-validated: {sha[:12]} deployed to {ENVIRONMENT} and passed its smoke test")
            return 0
        if state == "failure":
            out(
                f"FAIL staging-validated: the {ENVIRONMENT} deployment of {sha[:12]} failed; fix it on "
                f"{SOURCE_BRANCH} (or re-run deploy-staging), then re-run this check"
            )
            return 1
        if clock() >= deadline:
            out(
                f"FAIL staging-validated: {sha[:12]} has no successful {ENVIRONMENT} deployment yet; re-run this "
                f"check when deploy-staging for it has passed"
            )
            return 1
        out(f"waiting: the {ENVIRONMENT} deployment of {sha[:12]} has not finished")
        sleep(interval)


def main(argv: list[str] | None = None, env: dict[str, str] | None = None, out: Out = print) -> int:
    env = dict(os.environ) if env is None else env
    parser = argparse.ArgumentParser(prog="nox -s promotion-check --", description=__doc__.splitlines()[0])
    parser.add_argument("--head-ref", required=True, help="the pull request's head branch")
    parser.add_argument("--head-repo", required=True, help="OWNER/NAME the head branch lives in")
    parser.add_argument("--sha", required=True, help="the pull request's head commit")
    parser.add_argument("--repo", default=env.get("GITHUB_REPOSITORY"), help="OWNER/NAME (default: $GITHUB_REPOSITORY)")
    parser.add_argument("--wait", type=float, default=0, help="seconds to wait for a running staging deploy")
    parser.add_argument("--interval", type=float, default=30, help="seconds between polls")
    args = parser.parse_args(argv)
    token = token_from_env(env)
    if not token or not args.repo:
        print("GITHUB_TOKEN (or GH_TOKEN) and --repo/GITHUB_REPOSITORY are required", file=sys.stderr)
        return 2
    try:
        gh = GitHub(args.repo, token, env.get("GITHUB_API_URL"))
        return check(
            gh,
            head_ref=args.head_ref,
            head_repo=args.head_repo,
            sha=args.sha,
            wait=args.wait,
            interval=args.interval,
            out=out,
        )
    except (GitHubError, ValueError) as exc:
        out(f"FAIL staging-validated: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
