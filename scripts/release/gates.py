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
from scripts.release.apprunner import DeployTarget, ServiceState, update_request
from scripts.release.environments import PLACEHOLDER, Environment
from scripts.release.images import ImageRef, ImageRefError
from scripts.release.record import EcrRecord, tag_for

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


@dataclass
class Aws:
    """The AWS side, built by cli.connect() or by tests (Stubber / moto)."""

    target: DeployTarget
    secretsmanager: Any
    ecr: Any
    sts: Any


@dataclass
class Context:
    env: Environment
    repo: Path
    image_text: str | None = None
    aws: Aws | None = None
    aws_missing: str = "AWS credentials are missing (set AWS_PROFILE, or run in the deploy workflow's OIDC role)"
    idle_budget: float = 0.0
    rollback: bool = False  # a rollback re-runs an image that ran before: no branch/tree gates
    # Filled in while the gates run:
    image: ImageRef | None = None
    service: ServiceState | None = None
    secret_arns: dict[str, str] = field(default_factory=dict)
    request: dict[str, Any] | None = None
    account: str | None = None
    git_sha: str | None = None  # GIT_SHA to send; defaults to HEAD (a rollback sends the old image's)

    @property
    def record(self) -> EcrRecord:
        assert self.aws is not None
        return EcrRecord(self.aws.ecr, self.env.ecr_repository)


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
    remote = git(ctx.repo, "rev-parse", "-q", "--verify", f"refs/remotes/origin/{branch}")
    if remote and remote != head_sha(ctx.repo):
        return Result(
            name,
            False,
            f"HEAD is not origin/{branch} ({remote[:12]}): only what is pushed to {branch} deploys; push or pull",
        )
    return Result(name, True, f"{branch} -> {ctx.env.name}")


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
        return _rollback_target_validated(ctx, name)
    tree = head_tree(ctx.repo)
    if tree is None:
        return Result(name, False, "not a git checkout")
    if ctx.aws is None:
        return _no_aws(ctx, name)
    try:
        recorded = ctx.record.read(tree)
    except Exception as exc:  # noqa: BLE001 - any AWS failure fails closed
        return Result(name, False, f"could not read the record ({type(exc).__name__})")
    if recorded is None:
        return Result(
            name,
            False,
            f"tree {tree[:12]} was never validated on staging (no ECR tag {tag_for(tree)}): changes reach main "
            "only through develop; merge develop into main after staging validated it, never commit on main",
        )
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


def _rollback_target_validated(ctx: Context, name: str) -> Result:
    if ctx.aws is None:
        return _no_aws(ctx, name)
    if ctx.image is None:
        return Result(name, False, "no rollback target")
    tags = ctx.record.validated_tags(ctx.image.digest)
    if not tags:
        return Result(name, False, f"{ctx.image.digest} was never validated on staging; production won't run it")
    return Result(name, True, f"rollback target carries {tags[-1]}")


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
    if state.status == "OPERATION_IN_PROGRESS":
        return Result(
            name, False, f"{ctx.env.service} is still busy with another operation after {ctx.idle_budget:.0f}s"
        )
    if state.status != "RUNNING":
        return Result(name, False, f"{ctx.env.service} is {state.status}, not RUNNING")
    return Result(name, True, f"{ctx.env.service} is RUNNING {state.image.rsplit('@', 1)[-1]}")


def request_pins_environment(ctx: Context) -> Result:
    """Gate 6: the request sets NODE_ENV to the target environment, turns auto-deploy off, health-checks
    /readyz over HTTP and sends no placeholder."""
    image = ctx.image or ImageRef(
        "<account>.dkr.ecr.<region>.amazonaws.com", "", ctx.env.region, ctx.env.ecr_repository, "sha256:<digest>"
    )
    arns = ctx.secret_arns or {var: f"<arn of {secret}>" for var, secret in ctx.env.secrets.items()}
    if ctx.request is None:
        ctx.request = update_request(ctx.env, image, arns, ctx.git_sha or head_sha(ctx.repo), ctx.service)
    return check_request(ctx.env, ctx.request, ctx.image)


def check_request(env: Environment, request: dict[str, Any], image: ImageRef | None) -> Result:
    name = "request"
    source = request.get("SourceConfiguration", {})
    repo = source.get("ImageRepository", {})
    config = repo.get("ImageConfiguration", {})
    variables = config.get("RuntimeEnvironmentVariables", {})
    problems = []
    if variables.get("NODE_ENV") != env.node_env:
        problems.append(f"NODE_ENV is {variables.get('NODE_ENV')!r}, must be {env.node_env!r}")
    if source.get("AutoDeploymentsEnabled") is not False:
        problems.append("AutoDeploymentsEnabled must be False (an ECR push would deploy past every gate)")
    if image is None:
        problems.append("no image to deploy (see image-digest)")
    elif repo.get("ImageIdentifier") != image.ref:
        problems.append("the image is not the digest given")
    health = request.get("HealthCheckConfiguration", {})
    if health.get("Protocol") != "HTTP" or health.get("Path") != env.health_check_path:
        problems.append(f"the health check must be HTTP {env.health_check_path}")
    if config.get("Port") != str(env.port):
        problems.append(f"Port must be {env.port}")
    leaked = sorted(set(variables) & set(env.secrets))
    if leaked:
        problems.append(f"{', '.join(leaked)} must come from Secrets Manager, not a plain variable")
    unset = sorted(k for k in env.variables if not variables.get(k) or PLACEHOLDER.search(variables[k]))
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
    secrets_in_namespace,
    no_operation_in_progress,
    request_pins_environment,
]


def evaluate(ctx: Context) -> list[Result]:
    """Run every gate in order (no short-circuit: the user sees every reason at once)."""
    return [gate(ctx) for gate in GATES]
