"""The workflows in .github/workflows obey MV-OS's release policy (see rules.py), and the rules can fail.

GitHub is not reachable from here, so the workflows are proved by reading them: each rule runs on the real
files (no violation allowed) and on broken copies written to a temporary directory (the rule must object)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.github import settings as github_settings
from tests.workflows import rules

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
# The project's list of allowed actions and their SHAs: the only list the workflows are checked against.
PINNED = ROOT / ".github" / "pinned-actions.txt"
FILES = sorted(WORKFLOWS.glob("*.yml"))
EXPECTED = {"ci.yml", "deploy-staging.yml", "deploy-production.yml", "promotion-check.yml", "rollback.yml"}


def _wf(name: str) -> rules.Workflow:
    return rules.load(WORKFLOWS / name)


def test_the_expected_workflows_exist():
    assert {p.name for p in FILES} >= EXPECTED


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_real_workflow_has_no_violation(path):
    assert rules.violations(rules.load(path)) == []


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_action_is_pinned_to_the_listed_sha(path):
    """Same SHA and tag comment as .github/pinned-actions.txt (the SHAs read from each action's repo)."""
    assert rules.pins_match_list(path.read_text(), rules.read_pinned_actions(PINNED)) == []


def _nox() -> list[str]:
    """nox as the user runs it (`python3 -m nox`): the interpreter `nox -s tests` runs under, never PATH."""
    return [os.environ.get("MV_OS_NOX_PYTHON") or sys.executable, "-m", "nox"]


def test_every_nox_session_named_in_a_workflow_exists():
    """Ask nox itself: `nox -l --json -s <names>` fails with 'Sessions not found: …' for a missing one."""
    named = sorted({s for path in FILES for names in rules.nox_sessions(rules.load(path)).values() for s in names})
    assert {"lint", "tests", "e2e", "deploy", "plan", "validated-digest", "rollback"} <= set(named)
    result = subprocess.run(
        [*_nox(), "-f", str(ROOT / "noxfile.py"), "-l", "--json", "-s", *named],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"nox does not know every session the workflows call: {result.stderr}"
    assert {s["name"] for s in json.loads(result.stdout)} == set(named)


def _nox_commands(jobs: list[dict]) -> set[str]:
    return {s["run"] for job in jobs for s in rules.steps(job) if "nox -s" in s.get("run", "")}


def test_staging_runs_the_same_checks_as_ci():
    """develop is tested with exactly the commands a pull request gets (lint, tests, compat, browser tests,
    rehearsal)."""
    ci = _nox_commands(list(rules.jobs(_wf("ci.yml")).values()))
    staging = _nox_commands([rules.jobs(_wf("deploy-staging.yml"))["test"]])
    assert ci == staging
    assert set().union(*rules.nox_sessions(_wf("ci.yml")).values()) == {"lint", "tests", "compat", "e2e", "rehearse"}
    assert rules.jobs(_wf("deploy-staging.yml"))["deploy"]["needs"] == "test"


def test_ci_never_touches_aws_and_never_deploys():
    wf = _wf("ci.yml")
    assert not any(ref.startswith("aws-actions/") for _, ref in rules.uses_refs(wf))
    assert all(rules.environment_of(job) is None for job in rules.jobs(wf).values())
    assert set().union(*rules.nox_sessions(wf).values()).isdisjoint(rules.AWS_SESSIONS)


def test_staging_builds_once_and_deploys_the_built_digest():
    deploy = rules.jobs(_wf("deploy-staging.yml"))["deploy"]
    builds = [s for s in rules.steps(deploy) if s.get("uses", "").startswith("docker/build-push-action")]
    assert len(builds) == 1
    assert "push=true" in builds[0]["with"]["outputs"]
    assert builds[0]["if"] == "steps.recorded.outputs.digest == ''", "a validated tree is never built again"
    chosen = next(s for s in rules.steps(deploy) if s.get("id") == "image")
    assert chosen["env"] == {
        "RECORDED": "${{ steps.recorded.outputs.digest }}",
        "BUILT": f"${{{{ steps.{builds[0]['id']}.outputs.digest }}}}",
    }
    deploy_step = next(s for s in rules.steps(deploy) if "nox -s deploy" in s.get("run", ""))
    assert "steps.image.outputs.digest" in deploy_step["env"]["IMAGE"]
    assert "@" in deploy_step["env"]["IMAGE"], "deploy by digest (repo@sha256:…), never by tag"


def test_only_the_recorder_job_records_and_after_the_deploy():
    wf = _wf("deploy-staging.yml")
    sessions = rules.nox_sessions(wf)
    assert sessions["record"] == {"record"}
    assert "record" not in sessions["deploy"]
    record = rules.jobs(wf)["record"]
    assert record["needs"] == "deploy" and rules.environment_of(record) == "staging-record"
    assert not [u for j, u in rules.uses_refs(wf) if j == "record" and u.startswith("docker/")]


def test_job_timeouts_are_derived_from_the_engines_budget():
    """A job killed mid-deploy could leave production on a failed image: the timeout covers the engine's waits."""
    from scripts.release.environments import budget

    limits = budget()
    assert limits.idle + limits.deploy + limits.rollback == limits.seconds
    for name, job_id in (
        ("deploy-staging.yml", "deploy"),
        ("deploy-production.yml", "deploy"),
        ("rollback.yml", "rollback"),
    ):
        assert rules.jobs(_wf(name))[job_id]["timeout-minutes"] == limits.job_timeout_minutes, (name, job_id)


def test_production_gates_see_the_real_tip_and_full_history():
    wf = _wf("deploy-production.yml")
    for job_id in ("gate", "deploy"):
        job = rules.jobs(wf)[job_id]
        checkout = next(s for s in rules.steps(job) if s.get("uses", "").startswith("actions/checkout"))
        assert checkout["with"]["fetch-depth"] == 0, job_id
        assert any(s.get("env", {}).get("GITHUB_TOKEN") == "${{ github.token }}" for s in rules.steps(job)), job_id
    assert "workflow_dispatch" in rules.triggers(wf), "the redeploy after a secret rotation"


def test_the_audit_runs_daily_in_its_own_environment():
    wf = _wf("audit.yml")
    assert "schedule" in rules.triggers(wf)
    job = rules.jobs(wf)["audit"]
    assert rules.environment_of(job) == "audit"
    assert {"audit", "github-settings"} <= rules.nox_sessions(wf)["audit"]


def test_production_deploys_the_gate_digest_after_the_gate():
    wf = _wf("deploy-production.yml")
    gate, deploy = rules.jobs(wf)["gate"], rules.jobs(wf)["deploy"]
    assert "validated-digest" in rules.nox_sessions(wf)["gate"]
    assert deploy["needs"] == "gate"
    assert rules.environment_of(deploy) == "production"
    step = next(s for s in rules.steps(deploy) if "nox -s deploy" in s.get("run", ""))
    assert step["env"]["APPROVED_DIGEST"] == "${{ needs.gate.outputs.digest }}"
    assert '!= "$APPROVED_DIGEST"' in step["run"], "deploy refuses a digest other than the approved one"
    assert gate["outputs"]["digest"].startswith("${{ steps.validated.outputs")


def test_rollback_is_manual_per_environment():
    wf = _wf("rollback.yml")
    dispatch = rules.triggers(wf)["workflow_dispatch"]
    assert set(rules.triggers(wf)) == {"workflow_dispatch"}
    assert dispatch["inputs"]["environment"]["options"] == ["staging", "production"]
    assert rules.nox_sessions(wf) == {"rollback": {"rollback"}}


def test_promotion_check_guards_pull_requests_into_main_only():
    wf = _wf("promotion-check.yml")
    assert set(rules.triggers(wf)) == {"pull_request_target"}, "the check runs main's code, never the PR's"
    assert rules.triggers(wf)["pull_request_target"]["branches"] == ["main"]
    for step in rules.steps(rules.jobs(wf)["promotion"]):
        assert "ref" not in step.get("with", {}), "never check out the pull request's code"
    assert rules.nox_sessions(wf) == {"promotion": {"promotion-check"}}


def test_required_checks_are_real_job_names():
    """Branch protection requires check names; a name no job reports would block every merge forever."""
    names = {job.get("name", job_id) for path in FILES for job_id, job in rules.jobs(rules.load(path)).items()}
    required = {c for branch in github_settings.desired().branches.values() for c in branch.required_checks}
    assert required, "branch protection without required checks"
    assert required <= names, f"required checks that no workflow job reports: {sorted(required - names)}"


# ------------------------------------------------------------------------------ broken copies must fail


def _broken_copy(tmp_path: Path, name: str, old: str, new: str) -> Path:
    text = (WORKFLOWS / name).read_text()
    assert old in text, f"{old!r} not in {name}: the demonstration no longer applies"
    copy = tmp_path / name
    copy.write_text(text.replace(old, new, 1))
    return copy


def test_unpinned_action_in_a_copy_is_caught(tmp_path):
    copy = _broken_copy(
        tmp_path,
        "deploy-production.yml",
        "aws-actions/configure-aws-credentials@e6de054238d6b7531b4efff3b6587d9aade6a06c  # v6.2.3",
        "aws-actions/configure-aws-credentials@v6",
    )
    wf = rules.load(copy)
    assert rules.unpinned_uses(wf) == [
        "gate: aws-actions/configure-aws-credentials@v6 is not pinned to a full commit SHA"
    ]
    assert rules.pins_match_list(copy.read_text(), rules.read_pinned_actions(PINNED))
    assert rules.violations(wf)


def test_deploy_job_without_environment_in_a_copy_is_caught(tmp_path):
    copy = _broken_copy(
        tmp_path,
        "deploy-production.yml",
        "    environment: production\n",
        "",
    )
    wf = rules.load(copy)
    assert rules.deploy_jobs_have_environment(wf) == ["deploy: reaches AWS but has no environment"]
    assert "deploy: id-token: write outside a job with an environment" in rules.job_permissions(wf)


def test_production_trigger_on_develop_in_a_copy_is_caught(tmp_path):
    copy = _broken_copy(tmp_path, "deploy-production.yml", "branches: [main]", "branches: [develop]")
    assert rules.environment_triggers(rules.load(copy)) == [
        "production deploys must trigger on push to [main] only, found branches=['develop']",
        "production-plan deploys must trigger on push to [main] only, found branches=['develop']",
    ]


def test_staging_trigger_on_a_pull_request_in_a_copy_is_caught(tmp_path):
    copy = _broken_copy(tmp_path, "deploy-staging.yml", "on:\n  push:\n", "on:\n  pull_request_target:\n  push:\n")
    assert rules.environment_triggers(rules.load(copy)) == [
        "trigger 'pull_request_target' may not start a workflow that deploys to ['staging', 'staging-record']"
    ]


def test_write_all_permissions_in_a_copy_are_caught(tmp_path):
    copy = _broken_copy(tmp_path, "ci.yml", "permissions:\n  contents: read\n", "permissions: write-all\n")
    assert rules.top_level_permissions(rules.load(copy)) == [
        "top-level permissions must be {contents: read}, found 'write-all'"
    ]


def test_id_token_in_a_job_without_environment_in_a_copy_is_caught(tmp_path):
    copy = _broken_copy(
        tmp_path,
        "promotion-check.yml",
        "      contents: read\n      deployments",
        "      contents: read\n      id-token: write\n      deployments",
    )
    assert rules.job_permissions(rules.load(copy)) == ["promotion: id-token: write outside a job with an environment"]


def test_untrusted_expression_in_run_in_a_copy_is_caught(tmp_path):
    copy = _broken_copy(
        tmp_path,
        "promotion-check.yml",
        '--head-ref "$HEAD_REF"',
        '--head-ref "${{ github.head_ref }}"',
    )
    assert rules.expressions_in_run(rules.load(copy)) == [
        "promotion: step 'nox -s promotion-check (head is develop, head commit validated on staging)' "
        "expands ${{ }} inside run:"
    ]


def test_cancel_in_progress_deploy_in_a_copy_is_caught(tmp_path):
    copy = _broken_copy(
        tmp_path,
        "deploy-staging.yml",
        "      group: deploy-staging\n      cancel-in-progress: false\n",
        "      group: deploy-staging\n      cancel-in-progress: true\n",
    )
    assert rules.deploy_concurrency(rules.load(copy)) == [
        "deploy: cancel-in-progress must be false (a half-done deploy is worse than a queue)"
    ]


def test_missing_timeout_in_a_copy_is_caught(tmp_path):
    copy = _broken_copy(tmp_path, "rollback.yml", "    timeout-minutes: 70\n", "")
    assert rules.timeouts(rules.load(copy)) == ["rollback: no timeout-minutes"]


def test_secret_outside_an_environment_job_in_a_copy_is_caught(tmp_path):
    copy = _broken_copy(
        tmp_path, "promotion-check.yml", "GITHUB_TOKEN: ${{ github.token }}", "GITHUB_TOKEN: ${{ secrets.ADMIN_PAT }}"
    )
    assert rules.secrets_outside_environment(rules.load(copy)) == ["promotion: reads secrets.* without an environment"]


def test_a_build_in_the_production_workflow_in_a_copy_is_caught(tmp_path):
    copy = _broken_copy(
        tmp_path,
        "deploy-production.yml",
        "      - name: nox -s deploy -- production",
        "      - name: rebuild\n        run: docker build -t app .\n      - name: nox -s deploy -- production",
    )
    assert rules.production_never_builds(rules.load(copy)) == ["deploy: runs docker build"]
