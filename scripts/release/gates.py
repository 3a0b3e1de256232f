"""The release gates.  Each gate is a named function `gate(ctx) -> Result`; `plan` prints all of them and
`deploy` refuses unless all pass.  AWS gates fail closed: no credentials means FAIL, never a skip."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scripts.release import secrets as secrets_mod
from scripts.release import targets
from scripts.release.environments import PLACEHOLDER, Environment
from scripts.release.images import ImageRef, ImageRefError
from scripts.release.record import ProductionHistory, Ran, StagingRecord
from scripts.release.targets.base import BUSY, RUNNING, DeployTarget, RequestView, ServiceState

# The rehearsal stand-in's switch that lets production use a local database (backend/mv_os/policy.py): the
# engine never sends it, so no real service runs with it.
REHEARSAL_LOCAL_DATABASE = "MV_OS_REHEARSAL_LOCAL_DATABASE"

SEED_RULE = (
    "develop deploys to staging, main deploys to production, nothing else deploys: App Runner is never used "
    "for feature iteration, UI testing or debugging (run it locally: `nox -s dev`)"
)


@dataclass(frozen=True)
class Result:
    name: str
    ok: bool
    reason: str = ""

    def line(self) -> str:
        if self.ok:
            return f"PASS {self.name}" + (f" ({self.reason})" if self.reason else "")
        return f"FAIL {self.name}: {self.reason}"


def aws_error(exc: BaseException) -> str:
    """The AWS error code (AccessDeniedException, ExpiredToken, ...) or the exception's type; never a message,
    which could be long or hold an ARN with the account id."""
    response = getattr(exc, "response", None)
    code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
    return code or type(exc).__name__


@dataclass
class Aws:
    """The AWS side, built by cli.connect() or by tests (Stubber / moto)."""

    target: DeployTarget
    secretsmanager: Any
    ecr: Any
    sts: Any
    ssm: Any = None  # the release records (scripts/release/record.py)
    logs: Any = None  # CloudWatch Logs: the service's application log, tailed when a deploy fails


@dataclass
class Context:
    env: Environment
    repo: Path
    image_text: str | None = None
    aws: Aws | None = None
    aws_missing: str = "AWS credentials are missing (set AWS_PROFILE, or run in the deploy workflow's OIDC role)"
    idle_budget: float = 0.0
    rollback: bool = False  # a rollback re-runs an image that ran before: no branch/tree gates
    redeploy: bool = False  # start a deployment even if nothing changed (fresh secret values)
    # The branch's real tip (GitHub API or `git ls-remote`); tests and the rehearsal inject their own.
    tip: Callable[[Path, str], str | None] | None = None
    run: str = field(default_factory=lambda: _run_id())
    # Filled in while the gates run:
    image: ImageRef | None = None
    service: ServiceState | None = None
    secret_arns: dict[str, str] = field(default_factory=dict)
    request: dict[str, Any] | None = None
    account: str | None = None
    git_sha: str | None = None  # GIT_SHA to send; defaults to HEAD (a rollback sends the old image's)
    rollback_to: Ran | None = None  # production: the history entry a rollback goes back to

    @property
    def record(self) -> StagingRecord:
        assert self.aws is not None
        return StagingRecord(self.aws.ssm)

    @property
    def history(self) -> ProductionHistory:
        assert self.aws is not None
        return ProductionHistory(self.aws.ssm)


def _run_id() -> str:
    """Which run did it: the GitHub Actions run (id and attempt), else the local user."""
    if os.environ.get("GITHUB_RUN_ID"):
        return (
            f"{os.environ.get('GITHUB_REPOSITORY', '')}/actions/runs/{os.environ['GITHUB_RUN_ID']}"
            f"/attempts/{os.environ.get('GITHUB_RUN_ATTEMPT', '1')}"
        )
    return f"local:{os.environ.get('USER', 'unknown')}"


# -- git -------------------------------------------------------------------------------------------------
def git(repo: Path, *args: str) -> str | None:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=False)
    return done.stdout.strip() if done.returncode == 0 else None


def head_sha(repo: Path) -> str:
    return git(repo, "rev-parse", "HEAD") or "unknown"


def head_tree(repo: Path) -> str | None:
    return git(repo, "rev-parse", "HEAD^{tree}")


def current_branch(repo: Path) -> str | None:
    """The checked-out branch.  A detached HEAD counts only in GitHub Actions, when GITHUB_REF names a branch
    and GITHUB_SHA is exactly HEAD."""
    branch = git(repo, "symbolic-ref", "-q", "--short", "HEAD")
    if branch:
        return branch
    ref = os.environ.get("GITHUB_REF", "")
    if ref.startswith("refs/heads/") and os.environ.get("GITHUB_SHA") == head_sha(repo):
        return ref.removeprefix("refs/heads/")
    return None


# -- gates -----------------------------------------------------------------------------------------------
def branch_matches_environment(ctx: Context) -> Result:
    """Gate 1: `develop` only to staging, `main` only to production; any other ref is refused."""
    name = "branch"
    if ctx.rollback:
        return Result(name, True, "rollback: re-runs an image that ran before")
    branch = current_branch(ctx.repo)
    if branch != ctx.env.branch:
        shown = branch or f"detached HEAD {head_sha(ctx.repo)[:12]}"
        return Result(name, False, f"{shown} may not deploy to {ctx.env.name}. {SEED_RULE}")
    try:
        tip = (ctx.tip or branch_tip)(ctx.repo, branch)
    except TipError as exc:
        return Result(name, False, f"cannot read the real tip of {branch}: {exc}; refusing")
    if tip and tip != head_sha(ctx.repo):
        return Result(
            name,
            False,
            f"HEAD {head_sha(ctx.repo)[:12]} is not the tip of {branch} ({tip[:12]}): only what is pushed to "
            f"{branch} deploys, and a re-run of an older run never does; push or pull, or run the newest run",
        )
    return Result(name, True, f"{branch} -> {ctx.env.name}" + (f", at its tip {tip[:12]}" if tip else ""))


class TipError(Exception):
    pass


def branch_tip(repo: Path, branch: str) -> str | None:
    """The branch's tip where it really lives.  In GitHub Actions, actions/checkout points origin/<branch> at the
    run's own commit, so the API is asked (job token).  Elsewhere `git ls-remote origin`; None if there is no
    origin remote to compare with."""
    if os.environ.get("GITHUB_ACTIONS") == "true":
        from scripts.github.api import GitHub, GitHubError, token_from_env

        try:
            gh = GitHub(os.environ.get("GITHUB_REPOSITORY", ""), token_from_env())
            got = gh.get(gh.repo_path(f"/git/ref/heads/{branch}"))
        except (ValueError, GitHubError) as exc:
            raise TipError(str(exc)) from None
        if not got:
            raise TipError(f"GitHub has no branch {branch}")
        return got["object"]["sha"]
    if git(repo, "remote", "get-url", "origin") is None:
        return git(repo, "rev-parse", "-q", "--verify", f"refs/remotes/origin/{branch}")
    out = git(repo, "ls-remote", "origin", f"refs/heads/{branch}")
    if out is None:
        raise TipError("git ls-remote origin failed")
    return out.split()[0] if out else None


def image_by_digest(ctx: Context) -> Result:
    """Gate 2: the image is given by digest (never a mutable tag), from the environment's ECR repository."""
    name = "image-digest"
    if not ctx.image_text:
        return Result(name, False, "no image given: --image <repo>@sha256:<digest>")
    try:
        image = ImageRef.parse(ctx.image_text)
    except ImageRefError as exc:
        return Result(name, False, str(exc))
    if image.repository != ctx.env.ecr_repository:
        return Result(name, False, f"{image.repository} is not {ctx.env.name}'s repository {ctx.env.ecr_repository}")
    if image.region != ctx.env.region:
        return Result(name, False, f"the image is in {image.region}; {ctx.env.service} runs in {ctx.env.region}")
    ctx.image = image
    return Result(name, True, image.digest)


def aws_credentials(ctx: Context) -> Result:
    """The AWS identity the engine acts as (and, once an image is known, that it is in the same account)."""
    name = "aws-credentials"
    if ctx.aws is None:
        return Result(name, False, ctx.aws_missing)
    try:
        ident = ctx.aws.sts.get_caller_identity()
    except Exception as exc:  # noqa: BLE001 - NoCredentialsError, ClientError, endpoint errors: all fail closed
        ctx.aws = None
        ctx.aws_missing = f"AWS credentials are missing or unusable ({type(exc).__name__})"
        return Result(name, False, ctx.aws_missing)
    ctx.account = ident.get("Account")
    if ctx.image is not None and ctx.image.account != ctx.account:
        return Result(name, False, f"the image is in account {ctx.image.account}, the role is in {ctx.account}")
    return Result(name, True, f"{ident.get('Arn')}")


def _no_aws(ctx: Context, name: str) -> Result:
    return Result(name, False, f"{ctx.aws_missing}; cannot check, so refusing")


def tree_validated_on_staging(ctx: Context) -> Result:
    """Gate 3 (production): HEAD's tree has a staging-validated record naming this very digest."""
    name = "staging-validated"
    if ctx.env.name != "production":
        return Result(name, True, f"not required for {ctx.env.name}")
    if ctx.rollback:
        return ran_on_production(ctx)
    tree = head_tree(ctx.repo)
    if tree is None:
        return Result(name, False, "not a git checkout")
    if ctx.aws is None:
        return _no_aws(ctx, name)
    try:
        found = ctx.record.read(tree)
    except Exception as exc:  # noqa: BLE001 - any AWS failure (or a tampered record) fails closed
        return Result(name, False, f"could not read the record ({type(exc).__name__}: {exc})")
    if found is None:
        return Result(
            name,
            False,
            f"tree {tree[:12]} was never validated on staging (no staging-validated record): changes reach main "
            "only through develop; merge develop into main after staging validated it, never commit on main",
        )
    recorded = found.digest
    if ctx.image is None:
        return Result(name, False, f"tree {tree[:12]} was validated with {recorded}; deploy that digest")
    if ctx.image.digest != recorded:
        return Result(
            name,
            False,
            f"tree {tree[:12]} was validated on staging with {recorded}, not {ctx.image.digest}: production "
            "deploys the digest staging validated, never a rebuild",
        )
    return Result(name, True, f"tree {tree[:12]} validated with this digest")


def ran_on_production(ctx: Context) -> Result:
    """Production rolls back only to a digest production itself ran (its history), never to any build that
    staging once validated: a develop build that never reached main carries a record too."""
    name = "production-history"
    if ctx.aws is None:
        return _no_aws(ctx, name)
    if ctx.image is None:
        return Result(name, False, "no rollback target")
    try:
        ran = ctx.history.find(ctx.image.digest)
    except Exception as exc:  # noqa: BLE001 - a tampered or unreadable history fails closed
        return Result(name, False, f"cannot read the production history ({type(exc).__name__}: {exc})")
    if ran is None:
        return Result(
            name, False, f"{ctx.image.digest} never ran on production: production rolls back only to its own history"
        )
    ctx.rollback_to = ran
    return Result(name, True, f"production ran it (entry {ran.seq}, {ran.kind} of {ran.git_sha[:12]} at {ran.at})")


def newer_than_production(ctx: Context) -> Result:
    """Gate (production deploys): HEAD contains the commit production runs now, so a stale re-run or a late
    approval of an older run can never put an older tree over a newer one."""
    name = "not-older-than-production"
    if ctx.env.name != "production" or ctx.rollback:
        return Result(name, True, f"not required for {'a rollback' if ctx.rollback else ctx.env.name}")
    if ctx.aws is None:
        return _no_aws(ctx, name)
    try:
        latest = ctx.history.latest()
    except Exception as exc:  # noqa: BLE001 - fail closed
        return Result(name, False, f"cannot read the production history ({type(exc).__name__}: {exc})")
    if latest is None:
        return Result(name, True, "production has no history yet (first deploy)")
    head = head_sha(ctx.repo)
    if latest.git_sha == head or latest.tree == head_tree(ctx.repo):
        return Result(name, True, f"production runs this tree ({latest.git_sha[:12]})")
    if git(ctx.repo, "merge-base", "--is-ancestor", latest.git_sha, head) is not None:
        return Result(name, True, f"HEAD contains {latest.git_sha[:12]}, which production runs")
    return Result(
        name,
        False,
        f"production runs {latest.git_sha[:12]} ({latest.digest}), which HEAD {head[:12]} does not contain: this "
        "run is older than production (a re-run or a late approval); deploy the tip of main instead",
    )


def secrets_in_namespace(ctx: Context) -> Result:
    """Gate 4: every secret resolves to a full ARN inside the environment's namespace."""
    name = "secrets-namespace"
    if ctx.aws is None:
        return _no_aws(ctx, name)
    arns, problems = secrets_mod.resolve(ctx.aws.secretsmanager, ctx.env)
    if problems:
        return Result(name, False, "; ".join(problems))
    ctx.secret_arns = arns
    return Result(name, True, f"{len(arns)} secrets in {ctx.env.secret_namespace}*")


def no_operation_in_progress(ctx: Context) -> Result:
    """Gate 5: the service is idle (waits up to ctx.idle_budget with backoff, then refuses)."""
    name = "no-operation-in-progress"
    if ctx.aws is None:
        return _no_aws(ctx, name)
    try:
        state = ctx.aws.target.wait_until_idle(ctx.env.service, ctx.idle_budget)
    except Exception as exc:  # noqa: BLE001 - fail closed, say why
        return Result(name, False, f"could not read {ctx.env.service}: {exc}")
    ctx.service = state
    if state.status == BUSY:
        return Result(
            name, False, f"{ctx.env.service} is still busy with another operation after {ctx.idle_budget:.0f}s"
        )
    if state.status != RUNNING:
        return Result(name, False, f"{ctx.env.service} is {state.status}, not RUNNING")
    return Result(name, True, f"{ctx.env.service} is RUNNING {state.image.rsplit('@', 1)[-1]}")


def request_pins_environment(ctx: Context) -> Result:
    """Gate 6: the request sets NODE_ENV to the target environment, turns auto-deploy off, health-checks
    /readyz over HTTP and sends no placeholder."""
    image = ctx.image or ImageRef(
        "<account>.dkr.ecr.<region>.amazonaws.com", "", ctx.env.region, ctx.env.ecr_repository, "sha256:<digest>"
    )
    arns = ctx.secret_arns or {var: f"<arn of {secret}>" for var, secret in ctx.env.secrets.items()}
    target = ctx.aws.target if ctx.aws is not None else targets.shape(ctx.env)
    if ctx.request is None:
        ctx.request = target.update_request(ctx.env, image, arns, ctx.git_sha or head_sha(ctx.repo), ctx.service)
    return check_request(ctx.env, target.view(ctx.request), ctx.image, recorded=ctx.rollback_to is not None)


def check_request(env: Environment, sent: RequestView, image: ImageRef | None, recorded: bool = False) -> Result:
    """`sent` is what the request makes the service run, on any target.  `recorded`: the configuration is the
    one a history entry ran with, so a variable added to env/environments.toml since then is not required of it."""
    name = "request"
    config = sent.configuration
    variables = sent.variables
    problems = []
    if variables.get("NODE_ENV") != env.node_env:
        problems.append(f"NODE_ENV is {variables.get('NODE_ENV')!r}, must be {env.node_env!r}")
    if sent.auto_deploy is not False:
        problems.append("AutoDeploymentsEnabled must be False (an ECR push would deploy past every gate)")
    if image is None:
        problems.append("no image to deploy (see image-digest)")
    elif sent.image != image.ref:
        problems.append("the image is not the digest given")
    if sent.health_protocol != "HTTP" or sent.health_path != env.health_check_path:
        problems.append(f"the health check must be HTTP {env.health_check_path}")
    if config.get("Port") != str(env.port):
        problems.append(f"Port must be {env.port}")
    if REHEARSAL_LOCAL_DATABASE in variables:
        problems.append(f"{REHEARSAL_LOCAL_DATABASE} is the rehearsal stand-in's switch; a real service never gets it")
    leaked = sorted(set(variables) & set(env.secrets))
    if leaked:
        problems.append(f"{', '.join(leaked)} must come from Secrets Manager, not a plain variable")
    unset = sorted(
        k
        for k in env.variables
        if (k in variables or not recorded) and (not variables.get(k) or PLACEHOLDER.search(variables[k]))
    )
    if unset:
        problems.append(f"{', '.join(unset)} still a placeholder in env/environments.toml")
    if problems:
        return Result(name, False, "; ".join(problems))
    return Result(name, True, f"NODE_ENV={env.node_env}, auto-deploy off")


GATES: list[Callable[[Context], Result]] = [
    branch_matches_environment,
    image_by_digest,
    aws_credentials,
    tree_validated_on_staging,
    newer_than_production,
    secrets_in_namespace,
    no_operation_in_progress,
    request_pins_environment,
]


def evaluate(ctx: Context) -> list[Result]:
    """Run every gate in order (no short-circuit: the user sees every reason at once)."""
    return [gate(ctx) for gate in GATES]


def gates_pass(ctx: Context, out: Callable[[str], None]) -> bool:
    """Print every gate's PASS/FAIL line; True only if all pass."""
    results = evaluate(ctx)
    for result in results:
        out(result.line())
    return all(r.ok for r in results)
