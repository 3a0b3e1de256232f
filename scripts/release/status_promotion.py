"""What a promotion of develop would ship, for `nox -s status`: the release branches as last fetched, the commits
production does not run, and the production gates (gates.evaluate, as `plan` runs them) on develop merged into
main.  The merge is built in a throwaway repository that borrows this one's objects, so nothing is written here."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from scripts.release import flows
from scripts.release.environments import Environment
from scripts.release.gates import Aws, Context, evaluate, git

COMMIT_LIMIT = 50


# -- git -------------------------------------------------------------------------------------------------------
def branch_ref(repo: Path, branch: str) -> dict[str, str] | None:
    """The branch as last fetched (`origin/<branch>`), else the local branch; None if neither exists."""
    for ref in (f"refs/remotes/origin/{branch}", f"refs/heads/{branch}"):
        sha = git(repo, "rev-parse", "-q", "--verify", f"{ref}^{{commit}}")
        if sha:
            return {"ref": ref.removeprefix("refs/remotes/").removeprefix("refs/heads/"), "sha": sha}
    return None


def tree_of(repo: Path, sha: str | None) -> str | None:
    return git(repo, "rev-parse", "-q", "--verify", f"{sha}^{{tree}}") if sha else None


def commits_between(repo: Path, base: str | None, tip: str) -> tuple[int, list[dict[str, str]]]:
    """Commits reachable from `tip` but not from `base` (all of them without a base), newest first."""
    span = f"{base}..{tip}" if base else tip
    count = int(git(repo, "rev-list", "--count", span) or 0)
    out = git(repo, "log", f"--max-count={COMMIT_LIMIT}", "--format=%h%x1f%s%x1f%an", span) or ""
    commits = [dict(zip(("sha", "subject", "author"), line.split("\x1f"), strict=True)) for line in out.splitlines()]
    return count, commits


# -- the promotion ---------------------------------------------------------------------------------------------
def _candidate(repo: Path, scratch: Path, main: dict | None, develop: dict) -> tuple[str | None, str]:
    """A throwaway repository whose `main` is develop merged into main (what a promotion makes), borrowing this
    repository's objects so nothing is written here.  Returns (candidate sha or None, what it is)."""
    objects = git(repo, "rev-parse", "--path-format=absolute", "--git-path", "objects")
    subprocess.run(["git", "init", "-q", str(scratch)], capture_output=True, check=True)
    (scratch / ".git" / "objects" / "info" / "alternates").write_text(f"{objects}\n")
    if main is None or git(repo, "merge-base", "--is-ancestor", develop["sha"], main["sha"]) is not None:
        sha = main["sha"] if main else develop["sha"]
        what = f"{main['ref']}, which already contains {develop['ref']}" if main else f"{develop['ref']} (no main yet)"
    else:
        merged = subprocess.run(
            ["git", "-C", str(scratch), "merge-tree", "--write-tree", "--name-only", main["sha"], develop["sha"]],
            capture_output=True,
            text=True,
            check=False,
        )
        if merged.returncode != 0:
            conflicts = ", ".join(merged.stdout.split("\n\n")[0].splitlines()[1:4]) or merged.stderr.strip()
            return None, f"{develop['ref']} does not merge cleanly into {main['ref']} ({conflicts})"
        # A fixed identity and date: the same branches give the same candidate commit on every run.
        who = {"GIT_AUTHOR_NAME": "status", "GIT_AUTHOR_EMAIL": "status@localhost", "GIT_AUTHOR_DATE": "@0 +0000"}
        who.update(GIT_COMMITTER_NAME="status", GIT_COMMITTER_EMAIL="status@localhost", GIT_COMMITTER_DATE="@0 +0000")
        sha = subprocess.run(
            ["git", "-C", str(scratch), "commit-tree", merged.stdout.split()[0], "-p", main["sha"], "-p",
             develop["sha"], "-m", f"Merge {develop['ref']} into {main['ref']}"],
            capture_output=True, text=True, check=True, env={**os.environ, **who},
        ).stdout.strip()  # fmt: skip
        what = f"{develop['ref']} merged into {main['ref']}"
    git(scratch, "update-ref", "refs/heads/main", sha)
    git(scratch, "symbolic-ref", "HEAD", "refs/heads/main")
    return sha, what


def promotion(repo: Path, env: Environment, aws: Aws | None, main: dict | None, develop: dict | None) -> dict:
    """The production gates (gates.evaluate, as `plan` runs them) for the tree a promotion of develop would
    ship, with the digest staging validated for that tree.  Without AWS the gates are not run."""
    result: dict[str, Any] = {"candidate": None, "tree": None, "digest": None, "verdict": "unknown", "gates": []}
    if develop is None:
        result["problem"] = "develop's history is not in this clone"
        return result
    with tempfile.TemporaryDirectory(prefix="mv-os-status-") as scratch:
        sha, what = _candidate(repo, Path(scratch), main, develop)
        result["candidate"] = what
        if sha is None:
            result.update(verdict="refused", problem=what)
            return result
        result["tree"] = tree_of(repo, sha) or git(Path(scratch), "rev-parse", "HEAD^{tree}")
        if aws is None:
            return result
        ctx = Context(env=env, repo=Path(scratch), aws=aws, tip=lambda _repo, _branch: sha)
        ctx.image_text = flows.validated_image(ctx)
        results = evaluate(ctx)
    result["digest"] = ctx.image.digest if ctx.image else None
    result["gates"] = [{"name": r.name, "ok": r.ok, "reason": r.reason, "line": r.line()} for r in results]
    result["verdict"] = "ready" if all(r.ok for r in results) else "refused"
    return result


def not_in_production(repo: Path, production: dict | None, develop: dict | None, main: dict | None) -> dict:
    """develop's commits that production does not run; if what production runs is unknown (no AWS), develop's
    commits not on main (git alone)."""
    result: dict[str, Any] = {"base": None, "base_is": None, "count": None, "commits": [], "truncated": False}
    if develop is None:
        return result
    if production and production["deployed"] is not None:
        base = production["commit"] if production["deployed"] else None
        if base and git(repo, "cat-file", "-e", f"{base}^{{commit}}") is None:
            result.update(base=base, base_is="production (commit not in this clone: git fetch)")
            return result
        result.update(base=base, base_is="production")
    else:
        result.update(base=main["sha"] if main else None, base_is=main["ref"] if main else None)
    count, commits = commits_between(repo, result["base"], develop["sha"])
    result.update(count=count, commits=commits, truncated=count > len(commits))
    return result


def up_to_date(production: dict, promo: dict) -> dict:
    """Production already runs the tree a promotion would ship: nothing to promote, whatever the gates say."""
    if promo["tree"] and production.get("tree") == promo["tree"]:
        return {"verdict": "up-to-date"}
    return {}
