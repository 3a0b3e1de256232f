"""Rules for the GitHub Actions workflows, as plain functions: parsed workflow in, list of violations out.

They run on the real files (which must give no violation) and on deliberately broken copies (which must), so
each rule is shown to be able to fail.  zizmor and check-jsonschema (`nox -s lint`) cover generic workflow
security and syntax; these rules encode MV-OS's release policy, which no generic tool knows."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

Workflow = dict[str, Any]

# Which branch may trigger a deploy to which GitHub environment (the environments' own deployment branch
# policies say the same; scripts/github/settings.py applies those).
ENVIRONMENT_BRANCH = {
    "staging": "develop",
    "staging-record": "develop",
    "production": "main",
    "production-plan": "main",
}
# Environments that change a running service: their jobs serialize on one concurrency group per environment.
DEPLOY_ENVIRONMENTS = {"staging", "production"}
# Triggers a job with an environment may have besides push (the environment's branch policy still applies; a
# schedule runs on the default branch).
MANUAL_TRIGGERS = {"workflow_dispatch", "schedule"}
# nox sessions that talk to AWS: only jobs with an environment (and its OIDC role) may run them.
AWS_SESSIONS = {"deploy", "record", "rollback", "plan", "validated-digest", "smoke", "audit"}
BUILD_ACTIONS = ("docker/build-push-action",)
SHA_RE = re.compile(r"^[0-9a-f]{40}$")
NOX_RE = re.compile(r"\bnox\b(?:\s+-[-\w]+)*?\s+(?:-s|--session|--sessions)\s+([\w-]+)")


def load(path: Path) -> Workflow:
    return yaml.safe_load(path.read_text())


def triggers(wf: Workflow) -> dict[str, Any]:
    """The `on:` block as a dict (PyYAML reads the bare key `on` as the boolean True)."""
    on = wf.get("on", wf.get(True))
    if isinstance(on, str):
        return {on: None}
    if isinstance(on, list):
        return dict.fromkeys(on)
    return dict(on or {})


def jobs(wf: Workflow) -> dict[str, dict[str, Any]]:
    return dict(wf.get("jobs") or {})


def environment_of(job: dict[str, Any]) -> str | None:
    env = job.get("environment")
    if isinstance(env, dict):
        env = env.get("name")
    return env


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return list(job.get("steps") or [])


def uses_refs(wf: Workflow) -> Iterator[tuple[str, str]]:
    """(job id, uses) for every step and every reusable-workflow call."""
    for job_id, job in jobs(wf).items():
        if "uses" in job:
            yield job_id, job["uses"]
        for step in steps(job):
            if "uses" in step:
                yield job_id, step["uses"]


def nox_sessions(wf: Workflow) -> dict[str, set[str]]:
    """job id -> the nox sessions its `run:` steps call."""
    out: dict[str, set[str]] = {}
    for job_id, job in jobs(wf).items():
        for step in steps(job):
            for name in NOX_RE.findall(str(step.get("run", ""))):
                out.setdefault(job_id, set()).add(name)
    return out


def _job_permissions(job: dict[str, Any]) -> dict[str, str]:
    perms = job.get("permissions")
    return perms if isinstance(perms, dict) else {}


def _is_aws_job(job_id: str, job: dict[str, Any], wf: Workflow) -> bool:
    uses = [u for j, u in uses_refs(wf) if j == job_id]
    return (
        _job_permissions(job).get("id-token") == "write"
        or any(u.startswith("aws-actions/") for u in uses)
        or bool(nox_sessions(wf).get(job_id, set()) & AWS_SESSIONS)
    )


# --------------------------------------------------------------------------------------------- the rules


def unpinned_uses(wf: Workflow) -> list[str]:
    """Every action and reusable workflow is pinned to a full 40-hex commit SHA (local ./ paths excepted)."""
    bad = []
    for job_id, ref in uses_refs(wf):
        if ref.startswith("./"):
            continue
        if ref.startswith("docker://"):
            if "@sha256:" not in ref:
                bad.append(f"{job_id}: {ref} is not pinned to an image digest")
            continue
        _, _, version = ref.partition("@")
        if not SHA_RE.match(version):
            bad.append(f"{job_id}: {ref} is not pinned to a full commit SHA")
    return bad


def top_level_permissions(wf: Workflow) -> list[str]:
    """`permissions` is set at the top level and is the minimum: `contents: read` (or nothing at all)."""
    perms = wf.get("permissions", "<missing>")
    if perms == {} or perms == {"contents": "read"}:
        return []
    return [f"top-level permissions must be {{contents: read}}, found {perms!r}"]


def job_permissions(wf: Workflow) -> list[str]:
    """Jobs never get write scopes, except `id-token: write`, and that only in a job with an environment."""
    bad = []
    for job_id, job in jobs(wf).items():
        perms = job.get("permissions")
        if perms is None:
            continue
        if not isinstance(perms, dict):
            bad.append(f"{job_id}: permissions must be a mapping, found {perms!r}")
            continue
        for scope, level in perms.items():
            if level == "write" and scope != "id-token":
                bad.append(f"{job_id}: {scope}: write is more than any MV-OS job needs")
        if perms.get("id-token") == "write" and not environment_of(job):
            bad.append(f"{job_id}: id-token: write outside a job with an environment")
    return bad


def deploy_jobs_have_environment(wf: Workflow) -> list[str]:
    """A job that can reach AWS (OIDC, aws-actions, deploy/rollback/plan sessions) names its environment."""
    return [
        f"{job_id}: reaches AWS but has no environment"
        for job_id, job in jobs(wf).items()
        if _is_aws_job(job_id, job, wf) and not environment_of(job)
    ]


def environment_triggers(wf: Workflow) -> list[str]:
    """Staging deploys trigger only on pushes to develop, production only on pushes to main.

    A workflow with environment jobs may otherwise only be started by hand (workflow_dispatch), where the
    environment's deployment branch policy decides; an environment chosen at run time (an expression) allows
    workflow_dispatch only."""
    envs = {environment_of(job) for job in jobs(wf).values()} - {None}
    if not envs:
        return []
    bad = []
    for event, config in triggers(wf).items():
        if event in MANUAL_TRIGGERS:
            continue
        if event != "push":
            bad.append(f"trigger {event!r} may not start a workflow that deploys to {sorted(envs)}")
            continue
        config = config or {}
        branches = config.get("branches")
        extra = sorted(set(config) - {"branches"})
        if extra:
            bad.append(f"push trigger with {extra} in a deploy workflow; use `branches:` only")
        for env in sorted(envs):
            wanted = ENVIRONMENT_BRANCH.get(env)
            if wanted is None:
                bad.append(f"environment {env!r} is chosen at run time or unknown: only workflow_dispatch allowed")
            elif branches != [wanted]:
                bad.append(f"{env} deploys must trigger on push to [{wanted}] only, found branches={branches!r}")
    return bad


def deploy_concurrency(wf: Workflow) -> list[str]:
    """Jobs that change an environment queue per environment and are never cancelled half-way."""
    bad = []
    for job_id, job in jobs(wf).items():
        env = environment_of(job)
        if env is None or (env not in DEPLOY_ENVIRONMENTS and "${{" not in env):
            continue
        conc = job.get("concurrency") or wf.get("concurrency")
        if not isinstance(conc, dict):
            bad.append(f"{job_id}: deploys to {env} without a concurrency group")
            continue
        group = str(conc.get("group", ""))
        expected = "deploy-${{ inputs.environment }}" if "${{" in env else f"deploy-{env}"
        if group != expected:
            bad.append(f"{job_id}: concurrency group must be {expected!r}, found {group!r}")
        if conc.get("cancel-in-progress") is not False:
            bad.append(f"{job_id}: cancel-in-progress must be false (a half-done deploy is worse than a queue)")
    return bad


def timeouts(wf: Workflow) -> list[str]:
    """Every job has timeout-minutes (a hung deploy must not hold the environment for six hours)."""
    return [
        f"{job_id}: no timeout-minutes"
        for job_id, job in jobs(wf).items()
        if "uses" not in job and not isinstance(job.get("timeout-minutes"), int)
    ]


def expressions_in_run(wf: Workflow) -> list[str]:
    """No `${{ }}` inside run: at all; values reach the shell through env: (no template injection)."""
    return [
        f"{job_id}: step {step.get('name', '?')!r} expands ${{{{ }}}} inside run:"
        for job_id, job in jobs(wf).items()
        for step in steps(job)
        if "${{" in str(step.get("run", ""))
    ]


def secrets_outside_environment(wf: Workflow) -> list[str]:
    """`secrets.*` is read only inside jobs that have an environment (never at workflow level)."""
    bad = []
    top = {k: v for k, v in wf.items() if k != "jobs"}
    if "secrets." in yaml.safe_dump(top):
        bad.append("workflow-level keys read secrets.*")
    for job_id, job in jobs(wf).items():
        if not environment_of(job) and "secrets." in yaml.safe_dump(job):
            bad.append(f"{job_id}: reads secrets.* without an environment")
    return bad


def production_never_builds(wf: Workflow) -> list[str]:
    """A workflow that deploys production promotes a digest; it never builds an image."""
    envs = {environment_of(job) for job in jobs(wf).values()}
    if not envs & {"production", "production-plan"}:
        return []
    bad = [f"{job_id}: builds an image ({ref})" for job_id, ref in uses_refs(wf) if ref.startswith(BUILD_ACTIONS)]
    for job_id, job in jobs(wf).items():
        for step in steps(job):
            if re.search(r"\bdocker\s+(build|buildx\s+build)\b", str(step.get("run", ""))):
                bad.append(f"{job_id}: runs docker build")
    return bad


RULES: list[Callable[[Workflow], list[str]]] = [
    unpinned_uses,
    top_level_permissions,
    job_permissions,
    deploy_jobs_have_environment,
    environment_triggers,
    deploy_concurrency,
    timeouts,
    expressions_in_run,
    secrets_outside_environment,
    production_never_builds,
]


def violations(wf: Workflow) -> list[str]:
    return [f"{rule.__name__}: {v}" for rule in RULES for v in rule(wf)]


# ------------------------------------------------------------------------ raw-text rules (comments are lost)

USES_LINE_RE = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<ref>\S+?)@(?P<sha>\S+)(?:\s+#\s*(?P<tag>\S+))?\s*$")


def read_pinned_actions(path: Path) -> dict[str, tuple[str, str]]:
    """owner/repo -> (tag, sha) from the shared pinned-actions.txt."""
    pins = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            repo, tag, sha = line.split()
            pins[repo] = (tag, sha)
    return pins


def pins_match_list(text: str, pins: dict[str, tuple[str, str]]) -> list[str]:
    """Every `uses:` line is `owner/repo@<sha>  # <tag>` with exactly the SHA and tag of the shared list."""
    bad = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if "uses:" not in line or line.strip().startswith("#"):
            continue
        m = USES_LINE_RE.match(line)
        if not m:
            bad.append(f"line {lineno}: cannot read `{line.strip()}` as owner/repo@sha  # tag")
            continue
        repo = "/".join(m["ref"].split("/")[:2])
        if repo not in pins:
            bad.append(f"line {lineno}: {repo} is not in the pinned-actions list")
            continue
        tag, sha = pins[repo]
        if m["sha"] != sha or m["tag"] != tag:
            bad.append(f"line {lineno}: {repo}@{m['sha']} # {m['tag']} should be @{sha} # {tag}")
    return bad
