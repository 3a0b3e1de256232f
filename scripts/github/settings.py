"""Show (`--plan`) and apply MV-OS's GitHub settings: branch protection and deployment environments.

Desired state lives in .github/repository-settings.toml.  The REST endpoints used:
  GET/PUT  /repos/{repo}/branches/{branch}/protection
  GET/PUT  /repos/{repo}/environments/{name}
  GET/POST /repos/{repo}/environments/{name}/deployment-branch-policies, DELETE …/{id}
  GET/PUT  /repos/{repo}/actions/oidc/customization/sub   (the OIDC `sub` template the AWS trusts match)
  GET      /orgs/{owner}/teams/{slug}, /users/{login}   (reviewer ids)
Required checks are bound to the GitHub Actions app (app_id 15368) through `checks`, not the deprecated
`contexts` (GitHub refuses a request with both)."""

from __future__ import annotations

import argparse
import os
import sys
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scripts.github.api import GitHub, GitHubError, token_from_env

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / ".github" / "repository-settings.toml"
GITHUB_ACTIONS_APP_ID = 15368
MAX_REVIEWERS = 6

Out = Callable[[str], None]


class SettingsError(ValueError):
    """The desired state is invalid or cannot be applied as asked."""


@dataclass(frozen=True)
class BranchRule:
    branch: str
    required_checks: tuple[str, ...]
    required_approvals: int = 1
    code_owner_reviews: bool = True

    def state(self) -> dict[str, Any]:
        return {
            "required_checks": sorted(f"{c} (app {GITHUB_ACTIONS_APP_ID})" for c in self.required_checks),
            "up_to_date_before_merge": True,
            "required_approvals": self.required_approvals,
            "code_owner_reviews": self.code_owner_reviews,
            "dismiss_stale_reviews": True,
            "enforce_admins": True,
            "allow_force_pushes": False,
            "allow_deletions": False,
            "conversation_resolution": True,
        }

    def request_body(self) -> dict[str, Any]:
        return {
            "required_status_checks": {
                "strict": True,
                "checks": [{"context": c, "app_id": GITHUB_ACTIONS_APP_ID} for c in self.required_checks],
            },
            "enforce_admins": True,
            "required_pull_request_reviews": {
                "dismiss_stale_reviews": True,
                "require_code_owner_reviews": self.code_owner_reviews,
                "required_approving_review_count": self.required_approvals,
            },
            "restrictions": None,
            "allow_force_pushes": False,
            "allow_deletions": False,
            "required_conversation_resolution": True,
        }


@dataclass(frozen=True)
class EnvironmentRule:
    name: str
    deployment_branches: tuple[str, ...]
    reviewers: tuple[str, ...] = ()
    prevent_self_review: bool = False
    wait_timer: int = 0
    admins_bypass: bool = False  # "Allow administrators to bypass configured protection rules"

    def state(self) -> dict[str, Any]:
        return {
            "deployment_branches": sorted(self.deployment_branches),
            "custom_branch_policies": True,
            "reviewers": sorted(self.reviewers),
            "prevent_self_review": self.prevent_self_review,
            "wait_timer": self.wait_timer,
            "admins_bypass": self.admins_bypass,
        }


@dataclass(frozen=True)
class Desired:
    branches: dict[str, BranchRule] = field(default_factory=dict)
    environments: dict[str, EnvironmentRule] = field(default_factory=dict)
    oidc_claim_keys: tuple[str, ...] = ()  # the repository's OIDC subject template (include_claim_keys)


def desired(path: Path = CONFIG) -> Desired:
    """Read and validate the desired state."""
    data = tomllib.loads(path.read_text())
    branches = {
        name: BranchRule(
            name,
            tuple(cfg.get("required_checks", ())),
            int(cfg.get("required_approvals", 1)),
            bool(cfg.get("code_owner_reviews", True)),
        )
        for name, cfg in data.get("branches", {}).items()
    }
    envs = {
        name: EnvironmentRule(
            name,
            tuple(cfg.get("deployment_branches", ())),
            tuple(cfg.get("reviewers", ())),
            bool(cfg.get("prevent_self_review", False)),
            int(cfg.get("wait_timer", 0)),
            bool(cfg.get("admins_bypass", False)),
        )
        for name, cfg in data.get("environments", {}).items()
    }
    want = Desired(branches, envs, tuple(data.get("oidc", {}).get("include_claim_keys", ())))
    _validate(want)
    return want


def _validate(want: Desired) -> None:
    for rule in want.branches.values():
        if not rule.required_checks:
            raise SettingsError(f"branch {rule.branch}: protection without required checks")
    for env in want.environments.values():
        if not env.deployment_branches:
            raise SettingsError(f"environment {env.name}: name the branches that may deploy to it")
        if len(env.reviewers) > MAX_REVIEWERS:
            raise SettingsError(f"environment {env.name}: GitHub allows at most {MAX_REVIEWERS} reviewers")
        for reviewer in env.reviewers:
            kind, _, who = reviewer.partition(":")
            if kind not in ("user", "team") or not who:
                raise SettingsError(f"environment {env.name}: reviewer {reviewer!r} must be user:LOGIN or team:SLUG")
    prod = want.environments.get("production")
    if prod is None:
        raise SettingsError("the production environment is missing")
    if not prod.reviewers or not prod.prevent_self_review:
        raise SettingsError("production needs required reviewers and prevent_self_review = true")
    if prod.deployment_branches != ("main",):
        raise SettingsError("production deploys from main only")
    if prod.admins_bypass:
        raise SettingsError("production: admins_bypass must stay false (nobody skips the approval)")
    for needed in ("repo", "context", "ref", "job_workflow_ref"):
        if needed not in want.oidc_claim_keys:
            raise SettingsError(f"[oidc] include_claim_keys must include {needed!r} (infra/iam trusts match it)")


# ------------------------------------------------------------------------------------- reading GitHub


def _enabled(raw: dict, key: str) -> bool:
    value = raw.get(key)
    return bool(value.get("enabled")) if isinstance(value, dict) else bool(value)


def read_branch(gh: GitHub, branch: str) -> dict[str, Any] | None:
    raw = gh.get(gh.repo_path(f"/branches/{branch}/protection"))
    if raw is None:
        return None
    checks = (raw.get("required_status_checks") or {}).get("checks") or []
    reviews = raw.get("required_pull_request_reviews") or {}
    return {
        "required_checks": sorted(f"{c['context']} (app {c.get('app_id')})" for c in checks),
        "up_to_date_before_merge": bool((raw.get("required_status_checks") or {}).get("strict")),
        "required_approvals": int(reviews.get("required_approving_review_count", 0)),
        "code_owner_reviews": bool(reviews.get("require_code_owner_reviews")),
        "dismiss_stale_reviews": bool(reviews.get("dismiss_stale_reviews")),
        "enforce_admins": _enabled(raw, "enforce_admins"),
        "allow_force_pushes": _enabled(raw, "allow_force_pushes"),
        "allow_deletions": _enabled(raw, "allow_deletions"),
        "conversation_resolution": _enabled(raw, "required_conversation_resolution"),
    }


def _branch_policies(gh: GitHub, env: str) -> list[dict[str, Any]]:
    raw = gh.get(gh.repo_path(f"/environments/{env}/deployment-branch-policies"), per_page=100) or {}
    return list(raw.get("branch_policies") or [])


def read_environment(gh: GitHub, name: str) -> dict[str, Any] | None:
    raw = gh.get(gh.repo_path(f"/environments/{name}"))
    if raw is None:
        return None
    policy = raw.get("deployment_branch_policy") or {}
    custom = bool(policy.get("custom_branch_policies"))
    reviewers: list[str] = []
    prevent_self_review = False
    wait_timer = 0
    for rule in raw.get("protection_rules") or []:
        if rule.get("type") == "required_reviewers":
            prevent_self_review = bool(rule.get("prevent_self_review"))
            for r in rule.get("reviewers") or []:
                who = r.get("reviewer") or {}
                if r.get("type") == "Team":
                    reviewers.append(f"team:{who.get('slug')}")
                else:
                    reviewers.append(f"user:{who.get('login')}")
        elif rule.get("type") == "wait_timer":
            wait_timer = int(rule.get("wait_timer") or 0)
    branches = [p["name"] for p in _branch_policies(gh, name) if p.get("type", "branch") == "branch"] if custom else []
    return {
        "deployment_branches": sorted(branches),
        "custom_branch_policies": custom,
        "reviewers": sorted(reviewers),
        "prevent_self_review": prevent_self_review,
        "wait_timer": wait_timer,
        "admins_bypass": bool(raw.get("can_admins_bypass", True)),
    }


OIDC_PATH = "/actions/oidc/customization/sub"


def read_oidc(gh: GitHub) -> dict[str, Any]:
    raw = gh.get(gh.repo_path(OIDC_PATH)) or {"use_default": True}
    return {
        "use_default": bool(raw.get("use_default")),
        "include_claim_keys": list(raw.get("include_claim_keys") or []),
    }


def _oidc_state(want: Desired) -> dict[str, Any]:
    return {"use_default": False, "include_claim_keys": list(want.oidc_claim_keys)}


# ------------------------------------------------------------------------------------------------ plan


@dataclass(frozen=True)
class Change:
    kind: str  # "branch protection" | "environment"
    name: str
    current: dict[str, Any] | None
    wanted: dict[str, Any]

    def lines(self) -> list[str]:
        if self.current is None:
            head = f"{self.kind} {self.name}: create"
            return [head] + [f"  + {k}: {v}" for k, v in self.wanted.items()]
        out = [f"{self.kind} {self.name}: update"]
        for key, value in self.wanted.items():
            if self.current.get(key) != value:
                out.append(f"  ~ {key}: {self.current.get(key)} -> {value}")
        return out


def plan(gh: GitHub, want: Desired) -> list[Change]:
    """Every branch or environment whose settings differ from the desired state."""
    changes = []
    for name, rule in want.branches.items():
        current, wanted = read_branch(gh, name), rule.state()
        if current != wanted:
            changes.append(Change("branch protection", name, current, wanted))
    for name, env in want.environments.items():
        current, wanted = read_environment(gh, name), env.state()
        if current != wanted:
            changes.append(Change("environment", name, current, wanted))
    current, wanted = read_oidc(gh), _oidc_state(want)
    if current != wanted:
        changes.append(Change("oidc subject", "sub", current, wanted))
    return changes


# ----------------------------------------------------------------------------------------------- apply


def _reviewer_ids(gh: GitHub, env: EnvironmentRule) -> list[dict[str, Any]]:
    out = []
    for reviewer in env.reviewers:
        kind, _, who = reviewer.partition(":")
        path = f"/orgs/{gh.owner}/teams/{who}" if kind == "team" else f"/users/{who}"
        found = gh.get(path)
        if not found or "id" not in found:
            raise SettingsError(f"environment {env.name}: reviewer {reviewer} not found on GitHub")
        out.append({"type": "Team" if kind == "team" else "User", "id": found["id"]})
    return out


def apply_environment(gh: GitHub, env: EnvironmentRule) -> None:
    body: dict[str, Any] = {
        "wait_timer": env.wait_timer,
        "can_admins_bypass": env.admins_bypass,
        "deployment_branch_policy": {"protected_branches": False, "custom_branch_policies": True},
    }
    if env.reviewers:
        body["reviewers"] = _reviewer_ids(gh, env)
        body["prevent_self_review"] = env.prevent_self_review
    else:
        body["reviewers"] = None
    gh.request("PUT", gh.repo_path(f"/environments/{env.name}"), json=body)
    policies_path = gh.repo_path(f"/environments/{env.name}/deployment-branch-policies")
    existing = _branch_policies(gh, env.name)
    for policy in existing:
        if policy.get("type", "branch") != "branch" or policy["name"] not in env.deployment_branches:
            gh.request("DELETE", f"{policies_path}/{policy['id']}", ok=(204,))
    have = {p["name"] for p in existing if p.get("type", "branch") == "branch"}
    for branch in env.deployment_branches:
        if branch not in have:
            gh.request("POST", policies_path, json={"name": branch, "type": "branch"}, ok=(200, 201))


def apply(gh: GitHub, want: Desired, out: Out = print) -> list[Change]:
    """Make GitHub match the desired state, then read it back: raises if anything still differs."""
    changes = plan(gh, want)
    for change in changes:
        if change.kind == "branch protection":
            body = want.branches[change.name].request_body()
            gh.request("PUT", gh.repo_path(f"/branches/{change.name}/protection"), json=body)
        elif change.kind == "oidc subject":
            gh.request("PUT", gh.repo_path(OIDC_PATH), json=change.wanted, ok=(200, 201, 204))
        else:
            apply_environment(gh, want.environments[change.name])
        out(f"applied {change.kind} {change.name}")
    left = plan(gh, want)
    if left:
        raise SettingsError("GitHub still differs after apply: " + "; ".join(f"{c.kind} {c.name}" for c in left))
    return changes


# ------------------------------------------------------------------------------------------------- CLI


def offline_lines(want: Desired) -> list[str]:
    lines = []
    for name, rule in want.branches.items():
        lines += Change("branch protection", name, None, rule.state()).lines()
    for name, env in want.environments.items():
        lines += Change("environment", name, None, env.state()).lines()
    return lines + Change("oidc subject", "sub", None, _oidc_state(want)).lines()


def main(argv: list[str] | None = None, env: dict[str, str] | None = None, out: Out = print) -> int:
    env = dict(os.environ) if env is None else env
    parser = argparse.ArgumentParser(prog="nox -s github-settings --", description=__doc__.splitlines()[0])
    parser.add_argument("--plan", action="store_true", help="show what would change; change nothing")
    parser.add_argument("--check", action="store_true", help="like --plan, but exit 1 when GitHub differs")
    parser.add_argument("--repo", default=env.get("GITHUB_REPOSITORY"), help="OWNER/NAME (default: $GITHUB_REPOSITORY)")
    parser.add_argument("--config", type=Path, default=CONFIG, help="desired state (TOML)")
    args = parser.parse_args(argv)
    err: Out = lambda line: print(line, file=sys.stderr)  # noqa: E731
    try:
        want = desired(args.config)
    except (SettingsError, tomllib.TOMLDecodeError, OSError) as exc:
        err(f"invalid settings in {args.config}: {exc}")
        return 2
    token = token_from_env(env)
    dry = args.plan or args.check
    if not token or not args.repo:
        missing = "GITHUB_TOKEN (or GH_TOKEN)" if not token else "--repo OWNER/NAME (or GITHUB_REPOSITORY)"
        if dry and not args.check:
            out(f"offline plan (no {missing}): the full desired state")
            for line in offline_lines(want):
                out(line)
            return 0
        err(f"{missing} is required to {'compare with' if dry else 'apply to'} GitHub")
        return 2
    try:
        gh = GitHub(args.repo, token, env.get("GITHUB_API_URL"))
        if dry:
            changes = plan(gh, want)
            for change in changes:
                for line in change.lines():
                    out(line)
            out(f"{len(changes)} to change in {args.repo}" if changes else f"{args.repo} matches {args.config.name}")
            return 1 if args.check and changes else 0
        changes = apply(gh, want, out)
        out(f"{len(changes)} changed in {args.repo}; it now matches {args.config.name}")
        return 0
    except (GitHubError, SettingsError, ValueError) as exc:
        err(f"github-settings failed: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
