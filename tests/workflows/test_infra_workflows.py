"""The infrastructure workflows: pull requests get an offline plan with no AWS role; develop plans and applies
the staging stack; main plans production with a role that cannot execute, and applies only after the
production environment's approval, exactly the change set it planned.  Each rule also fails a broken copy."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest

from tests.workflows import rules

WORKFLOWS = Path(__file__).resolve().parents[2] / ".github" / "workflows"
INFRA_RE = re.compile(r"nox -s infra -- (\w+) (\w+)")


def _wf(name: str) -> rules.Workflow:
    return rules.load(WORKFLOWS / name)


def infra_calls(wf: rules.Workflow) -> dict[str, list[tuple[str, str]]]:
    """job id -> [(command, target)] of its `nox -s infra` steps."""
    return {
        job_id: [m for step in rules.steps(job) for m in INFRA_RE.findall(str(step.get("run", "")))]
        for job_id, job in rules.jobs(wf).items()
    }


def deploy_pipeline_problems(wf: rules.Workflow, env: str, plan_environment: str) -> list[str]:
    """plan (in `plan_environment`) -> apply (in `env`) of the `env` stack, the change set passed between them."""
    jobs, calls, bad = rules.jobs(wf), infra_calls(wf), []
    if calls.get("plan") != [("plan", env)] or calls.get("apply") != [("apply", env)]:
        bad.append(f"jobs must be plan -> apply of {env}, found {calls}")
        return bad
    plan, apply = jobs["plan"], jobs["apply"]
    if rules.environment_of(plan) != plan_environment or rules.environment_of(apply) != env:
        bad.append(f"plan runs in {rules.environment_of(plan)}, apply in {rules.environment_of(apply)}")
    if apply.get("needs") not in ("plan", ["plan"]):
        bad.append("apply does not wait for plan")
    if "needs.plan.outputs.change-set" not in str(apply.get("if", "")):
        bad.append("apply runs even when the plan found nothing")
    (step,) = [s for s in rules.steps(apply) if "nox -s infra" in str(s.get("run", ""))]
    if (
        step.get("env", {}).get("CHANGE_SET") != "${{ needs.plan.outputs.change-set }}"
        or '"$CHANGE_SET"' not in step["run"]
    ):
        bad.append("apply does not execute the change set the plan job made")
    (plan_step,) = [s for s in rules.steps(plan) if "nox -s infra" in str(s.get("run", ""))]
    if (
        '--summary "$GITHUB_STEP_SUMMARY"' not in plan_step["run"]
        or '--github-output "$GITHUB_OUTPUT"' not in plan_step["run"]
    ):
        bad.append("the plan is not written to the run summary and the job output")
    for job_id, job in jobs.items():
        roles = [
            s.get("with", {}).get("role-to-assume") for s in rules.steps(job) if "role-to-assume" in s.get("with", {})
        ]
        if roles != ["${{ vars.AWS_INFRA_ROLE_ARN }}"]:
            bad.append(f"{job_id}: must assume the environment's infrastructure role, found {roles}")
    return bad


@pytest.mark.parametrize(
    ("name", "env", "plan_environment", "branch"),
    [
        ("infra-staging.yml", "staging", "staging", "develop"),
        ("infra-production.yml", "production", "production-plan", "main"),
    ],
)
def test_each_environment_plans_then_applies_that_plan(name, env, plan_environment, branch):
    wf = _wf(name)
    assert deploy_pipeline_problems(wf, env, plan_environment) == []
    assert rules.triggers(wf)["push"] == {"branches": [branch]}  # staging first: develop reaches staging first


@pytest.mark.parametrize(
    "breakage",
    [
        lambda wf: wf["jobs"]["apply"].pop("if"),
        lambda wf: wf["jobs"]["apply"].pop("needs"),
        lambda wf: wf["jobs"]["apply"].update(environment="production-plan"),
        lambda wf: wf["jobs"]["apply"]["steps"][-1]["env"].update(CHANGE_SET="${{ github.sha }}"),
        lambda wf: wf["jobs"]["plan"]["steps"][-1].update(run="python -m nox -s infra -- plan production"),
        lambda wf: wf["jobs"]["apply"]["steps"][3]["with"].update(
            {"role-to-assume": "${{ vars.AWS_DEPLOY_ROLE_ARN }}"}
        ),
    ],
    ids=["apply-always", "apply-first", "no-approval", "other-change-set", "no-summary", "deploy-role"],
)
def test_the_pipeline_rule_fails_a_broken_copy(breakage):
    wf = copy.deepcopy(_wf("infra-production.yml"))
    breakage(wf)
    assert deploy_pipeline_problems(wf, "production", "production-plan") != []


def test_production_is_applied_only_through_the_production_environment():
    """The production environment has the required reviewers (.github/repository-settings.toml)."""
    jobs = rules.jobs(_wf("infra-production.yml"))
    assert jobs["apply"]["environment"] == "production"
    assert jobs["apply"]["concurrency"] == {"group": "deploy-production", "cancel-in-progress": False}


def test_pull_requests_get_an_offline_plan_and_no_aws_role():
    wf = _wf("infra-pr.yml")
    assert set(rules.triggers(wf)) == {"pull_request"}
    (job,) = rules.jobs(wf).values()
    assert rules.environment_of(job) is None and "id-token" not in str(job.get("permissions", {}))
    assert not [u for _, u in rules.uses_refs(wf) if u.startswith("aws-actions/")]
    (step,) = [s for s in rules.steps(job) if "nox -s infra" in str(s.get("run", ""))]
    assert "for target in shared staging production" in step["run"]
    assert 'diff "$target" --base "$BASE_SHA" --summary "$GITHUB_STEP_SUMMARY"' in step["run"]
    assert step["env"]["BASE_SHA"] == "${{ github.event.pull_request.base.sha }}"
    checkout = rules.steps(job)[0]
    assert checkout["with"]["fetch-depth"] == 0  # the base commit must be in the clone


def test_only_jobs_with_an_environment_plan_or_apply():
    for path in sorted(WORKFLOWS.glob("*.yml")):
        wf = rules.load(path)
        for job_id, calls in infra_calls(wf).items():
            if any(command in ("plan", "apply") for command, _ in calls):
                assert rules.environment_of(rules.jobs(wf)[job_id]), (path.name, job_id)
