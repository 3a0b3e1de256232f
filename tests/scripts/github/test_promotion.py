"""`nox -s promotion-check` (scripts/github/promotion.py) against a real local HTTP server with GitHub's
deployments API: only develop may be promoted, and only a head commit whose staging deployment succeeded."""

from __future__ import annotations

from scripts.github import promotion
from scripts.github.api import GitHub
from tests.support.fake_github import TOKEN

SHA = "a" * 40


def run(env, *, head_ref="develop", head_repo="acme/mv-os", sha=SHA, extra=()):
    lines: list[str] = []
    argv = ["--head-ref", head_ref, "--head-repo", head_repo, "--sha", sha, *extra]
    return promotion.main(argv, env=env, out=lines.append), "\n".join(lines)


def test_develop_with_a_successful_staging_deployment_passes(github, env):
    github.add_deployment(SHA, "staging-record", "queued", "in_progress", "success")
    code, out = run(env)
    assert code == 0, out
    assert "PASS staging-validated" in out


def test_a_superseded_but_once_successful_deployment_still_counts(github, env):
    github.add_deployment(SHA, "staging-record", "in_progress", "success", "inactive")
    assert run(env)[0] == 0


def test_a_feature_branch_into_main_is_refused_without_asking_github(github, env):
    code, out = run(env, head_ref="hotfix/login")
    assert code == 1
    assert "main only receives develop" in out
    assert github.log == []


def test_a_fork_named_develop_is_refused(github, env):
    code, out = run(env, head_repo="mallory/mv-os")
    assert code == 1
    assert "a fork" in out


def test_a_failed_staging_deployment_fails_at_once(github, env):
    github.add_deployment(SHA, "staging-record", "in_progress", "failure")
    code, out = run(env, extra=["--wait", "600", "--interval", "0"])
    assert code == 1
    assert "deployment of aaaaaaaaaaaa failed" in out


def test_a_production_or_other_commit_deployment_does_not_count(github, env):
    github.add_deployment(SHA, "production", "success")
    github.add_deployment("b" * 40, "staging-record", "success")
    code, out = run(env)
    assert code == 1
    assert "has no successful staging-record deployment yet" in out


def test_a_staging_deploy_without_its_record_does_not_count(github, env):
    """The deploy job passed but the recorder did not: the tree has no record, so it may not go to main."""
    github.add_deployment(SHA, "staging", "success")
    github.add_deployment(SHA, "staging-record", "in_progress", "failure")
    code, out = run(env)
    assert code == 1
    assert "staging-record deployment of aaaaaaaaaaaa failed" in out


def test_it_waits_for_a_running_staging_deployment(github, env):
    dep = github.add_deployment(SHA, "staging-record", "queued")
    polls = []

    def sleep(seconds):
        polls.append(seconds)
        if len(polls) == 2:  # the deploy-staging job finishes while the check waits
            github.statuses[dep].insert(0, {"id": 1, "state": "success"})

    lines: list[str] = []
    gh = GitHub("acme/mv-os", TOKEN, env["GITHUB_API_URL"])
    code = promotion.check(
        gh, head_ref="develop", head_repo="acme/mv-os", sha=SHA, wait=3600, interval=5, out=lines.append, sleep=sleep
    )
    assert code == 0, lines
    assert polls == [5, 5]


def test_waiting_gives_up_at_the_deadline(github, env):
    github.add_deployment(SHA, "staging-record", "in_progress")
    now = [0.0]
    gh = GitHub("acme/mv-os", TOKEN, env["GITHUB_API_URL"])
    lines: list[str] = []
    code = promotion.check(
        gh,
        head_ref="develop",
        head_repo="acme/mv-os",
        sha=SHA,
        wait=60,
        interval=30,
        out=lines.append,
        sleep=lambda s: now.__setitem__(0, now[0] + s),
        clock=lambda: now[0],
    )
    assert code == 1
    assert now[0] == 60


def test_bad_token_is_a_failure_that_names_the_call(github, env):
    code, out = run({**env, "GITHUB_TOKEN": "nope-placeholder"})  # pragma: allowlist secret
    assert code == 1
    assert "HTTP 401: Bad credentials" in out
    assert "nope-placeholder" not in out
