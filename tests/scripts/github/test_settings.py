"""`nox -s github-settings` (scripts/github/settings.py) against a real local HTTP server that behaves like
GitHub's REST API: --plan never writes, apply sends the documented request bodies, a second plan is empty,
stray branch policies go, and errors say what failed without the token."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.github import settings


def run(argv, env):
    lines: list[str] = []
    code = settings.main(argv, env=env, out=lines.append)
    return code, "\n".join(lines)


def test_plan_on_a_bare_repository_lists_everything_and_writes_nothing(github, env):
    code, out = run(["--plan"], env)
    assert code == 0
    assert "branch protection develop: create" in out
    assert "branch protection main: create" in out
    assert "environment production: create" in out
    assert "+ reviewers: ['team:release-approvers']" in out
    assert "oidc subject sub: update" in out
    assert "~ include_claim_keys: [] -> ['repo', 'context', 'ref', 'job_workflow_ref']" in out
    assert "8 to change in acme/mv-os" in out
    assert github.writes() == []


def test_check_exits_1_on_drift(github, env):
    assert run(["--check"], env)[0] == 1
    assert github.writes() == []


def test_apply_sends_githubs_documented_bodies(github, env):
    code, out = run([], env)
    assert code == 0, out
    puts = {path: body for method, path, body in github.writes() if method == "PUT"}

    main = puts["/repos/acme/mv-os/branches/main/protection"]
    assert main["required_status_checks"] == {
        "strict": True,
        "checks": [
            {"context": "ci / lint", "app_id": 15368},
            {"context": "ci / tests", "app_id": 15368},
            {"context": "ci / e2e", "app_id": 15368},
            {"context": "ci / image", "app_id": 15368},
            {"context": "ci / rehearse", "app_id": 15368},
            {"context": "promotion-check", "app_id": 15368},
        ],
    }
    assert "contexts" not in main["required_status_checks"], "GitHub refuses contexts together with checks"
    assert main["enforce_admins"] is True
    assert main["required_pull_request_reviews"]["required_approving_review_count"] == 1
    assert main["allow_force_pushes"] is False and main["allow_deletions"] is False
    assert main["restrictions"] is None
    assert main["required_pull_request_reviews"]["require_code_owner_reviews"] is True
    develop = puts["/repos/acme/mv-os/branches/develop/protection"]
    assert [c["context"] for c in develop["required_status_checks"]["checks"]] == [
        "ci / lint",
        "ci / tests",
        "ci / e2e",
        "ci / image",
        "ci / rehearse",
    ]
    assert develop["required_pull_request_reviews"]["require_code_owner_reviews"] is True

    production = puts["/repos/acme/mv-os/environments/production"]
    assert production["reviewers"] == [{"type": "Team", "id": 42}]
    assert production["prevent_self_review"] is True
    assert production["deployment_branch_policy"] == {"protected_branches": False, "custom_branch_policies": True}
    assert production["can_admins_bypass"] is False
    assert puts["/repos/acme/mv-os/environments/staging"]["reviewers"] is None

    assert [p["name"] for p in github.policies["staging"]] == ["develop"]
    assert [p["name"] for p in github.policies["production"]] == ["main"]
    assert [p["name"] for p in github.policies["production-plan"]] == ["main"]
    assert [p["name"] for p in github.policies["staging-record"]] == ["develop"]
    assert all(p["type"] == "branch" for ps in github.policies.values() for p in ps)
    assert puts["/repos/acme/mv-os/actions/oidc/customization/sub"] == {
        "use_default": False,
        "include_claim_keys": ["repo", "context", "ref", "job_workflow_ref"],
    }
    assert "8 changed in acme/mv-os" in out


def test_apply_converges_then_plan_shows_nothing(github, env):
    assert run([], env)[0] == 0
    writes = len(github.writes())
    code, out = run(["--check"], env)
    assert code == 0
    assert "acme/mv-os matches repository-settings.toml" in out
    assert run([], env)[0] == 0
    assert len(github.writes()) == writes, "a second apply must not write anything"


def test_drift_is_shown_and_repaired(github, env):
    assert run([], env)[0] == 0
    # Someone adds a wildcard deployment branch to production and lowers the approvals on main by hand.
    github.policies["production"].append({"id": 1, "name": "*", "type": "branch"})
    github.protections["main"]["required_pull_request_reviews"]["required_approving_review_count"] = 0

    code, out = run(["--plan"], env)
    assert code == 0
    assert "~ deployment_branches: ['*', 'main'] -> ['main']" in out
    assert "~ required_approvals: 0 -> 1" in out

    assert run([], env)[0] == 0
    assert ("DELETE", "/repos/acme/mv-os/environments/production/deployment-branch-policies/1", None) in github.log
    assert [p["name"] for p in github.policies["production"]] == ["main"]
    assert run(["--check"], env)[0] == 0


def test_admin_bypass_and_the_default_oidc_subject_are_drift(github, env):
    """An admin who turns on "allow administrators to bypass" or resets the OIDC template is caught and undone."""
    assert run([], env)[0] == 0
    github.environments["production"]["can_admins_bypass"] = True
    github.oidc = {"use_default": True}
    code, out = run(["--check"], env)
    assert code == 1
    assert "~ admins_bypass: True -> False" in out and "~ use_default: True -> False" in out
    assert run([], env)[0] == 0 and run(["--check"], env)[0] == 0


def test_bad_token_fails_with_githubs_reason_and_never_prints_the_token(github, env, capsys):
    env = {**env, "GITHUB_TOKEN": "wrong-token-placeholder"}  # pragma: allowlist secret
    code, out = run([], env)
    err = capsys.readouterr().err
    assert code == 1
    assert "HTTP 401: Bad credentials" in err
    assert "wrong-token-placeholder" not in err + out


def test_unknown_reviewer_is_an_error(github, env, tmp_path):
    config = tmp_path / "settings.toml"
    config.write_text(
        settings.CONFIG.read_text().replace('reviewers = ["team:release-approvers"]', 'reviewers = ["user:nobody"]')
    )
    code, _ = run(["--config", str(config)], env)
    assert code == 1
    assert "production" not in github.environments


def test_offline_plan_without_a_token_shows_the_desired_state(capsys):
    code, out = run(["--plan"], {})
    assert code == 0
    assert out.startswith("offline plan (no GITHUB_TOKEN (or GH_TOKEN))")
    assert "+ deployment_branches: ['main']" in out
    assert run([], {})[0] == 2
    assert "is required to apply to GitHub" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('reviewers = ["team:release-approvers"]\n', "", "production needs required reviewers"),
        ("prevent_self_review = true", "prevent_self_review = false", "production needs required reviewers"),
        (
            '[environments.production]\ndeployment_branches = ["main"]',
            '[environments.production]\ndeployment_branches = ["main", "develop"]',
            "production deploys from main only",
        ),
        (
            'reviewers = ["team:release-approvers"]',
            'reviewers = ["release-approvers"]',
            "must be user:LOGIN or team:SLUG",
        ),
    ],
)
def test_unsafe_settings_are_refused_before_any_call(tmp_path: Path, capsys, old, new, message):
    config = tmp_path / "settings.toml"
    text = settings.CONFIG.read_text()
    assert old in text
    config.write_text(text.replace(old, new))
    assert run(["--plan", "--config", str(config)], {})[0] == 2
    assert message in capsys.readouterr().err


def test_the_committed_settings_match_the_workflows():
    want = settings.desired()
    assert set(want.environments) == {"staging", "staging-record", "production", "production-plan", "audit"}
    assert not any(env.admins_bypass for env in want.environments.values())
    assert all(rule.code_owner_reviews for rule in want.branches.values())
    assert want.environments["staging"].deployment_branches == ("develop",)
    assert want.environments["production"].deployment_branches == ("main",)
    assert "promotion-check" in want.branches["main"].required_checks


def test_codeowners_cover_the_release_machinery():
    """Code-owner review is required on develop and main; it only bites where CODEOWNERS names an owner."""
    owned = {
        line.split()[0]: line.split()[1:]
        for line in (settings.ROOT / ".github" / "CODEOWNERS").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for path in ("/.github/", "/scripts/release/", "/infra/", "/env/environments.toml"):
        assert owned.get(path), f"{path} has no code owner"
