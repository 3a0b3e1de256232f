"""The release history of a small team, as scenarios that run in order on one World.  Each returns None (PASS) or
raises Failed(reason).  Later scenarios build on earlier ones (release 2 follows release 1), as a team's do."""

from __future__ import annotations

import secrets
from collections.abc import Callable

import yaml

from tests.rehearsal.world import Run, World


class Failed(Exception):
    pass


def expect(condition: bool, reason: str, run: Run | None = None) -> None:
    if not condition:
        tail = ("; last lines: " + " | ".join(run.lines[-4:])) if run is not None else ""
        raise Failed(reason + tail)


def _release(world: World, label: str, files: dict[str, str] | None = None) -> tuple[str, Run]:
    """A change on develop, pushed: deploy-staging runs (deploy, then the recorder)."""
    world.checkout("develop")
    sha = world.commit(label, files or {"backend/mv_os/release.txt": f"{label}\n"})
    world.push("develop")
    return sha, world.run_workflow("deploy-staging.yml", sha, "develop")


def _promote(world: World) -> tuple[str, Run]:
    sha = world.merge("main", "develop")
    return sha, world.run_workflow("deploy-production.yml", sha, "main")


def _digest(run: Run) -> str:
    return run.image.rsplit("@", 1)[-1]


# -- the scenarios -------------------------------------------------------------------------------------------------
def feature_branch_never_deploys(world: World, notes: dict) -> None:
    for name in ("deploy-staging.yml", "deploy-production.yml"):
        wf = yaml.safe_load((world.clone / ".github" / "workflows" / name).read_text())
        branches = (wf.get(True) or wf.get("on"))["push"]["branches"]
        expect("feature/inbox-filters" not in branches, f"{name} triggers on a feature branch")
    world.checkout("develop")
    world.git("checkout", "-q", "-b", "feature/inbox-filters")
    sha = world.commit("feature work", {"backend/mv_os/feature.txt": "wip\n"})
    world.git("push", "-q", "origin", "feature/inbox-filters")
    run = world.run_workflow("deploy-staging.yml", sha, "feature/inbox-filters")
    expect(run.code != 0, "a feature branch deployed to staging", run)
    expect("FAIL branch: feature/inbox-filters may not deploy" in run.text, "no branch refusal", run)
    expect(world.standin.services["mv-os-backend-staging"].instance is None, "staging changed")


def develop_deploys_to_staging_and_records(world: World, notes: dict) -> None:
    _sha, run = _release(world, "release 1")
    expect(run.code == 0, "deploy-staging failed", run)
    expect(world.serving("staging") == _digest(run), "staging does not serve the deployed digest", run)
    expect("recorded staging-validated/" in run.text, "no staging-validated record", run)
    # Both the deploy's smoke and the recorder's log in as the smoke user and see their logout written.
    expect(run.text.count("PASS login") == 2 and run.text.count("PASS db-write") == 2, "no smoke login", run)
    notes["r1"] = _digest(run)


def main_promotes_the_same_digest(world: World, notes: dict) -> None:
    sha, run = _promote(world)
    expect(run.code == 0, "deploy-production failed", run)
    expect(world.serving("production") == notes["r1"], "production does not serve staging's digest", run)
    expect("built " not in run.text, "production built an image", run)
    expect("PASS readyz" in run.text and "login" not in run.text, "production's smoke logged in", run)
    notes["main-r1"] = sha


def back_merge_and_second_release(world: World, notes: dict) -> None:
    world.checkout("develop")
    back = world.merge("develop", "main", ff=True)
    run = world.run_workflow("deploy-staging.yml", back, "develop")
    expect(run.code == 0, "the back-merge jammed staging", run)
    expect("built " not in run.text and _digest(run) == notes["r1"], "the back-merge rebuilt the tree", run)
    migration = (
        '"""Release 2 (expand): a nullable column; release 1 never reads it, so it keeps working."""\n\n\n'
        "def up(migrator, db):\n"
        '    db.execute_sql("ALTER TABLE users ADD COLUMN IF NOT EXISTS nickname text NULL")\n\n\n'
        "def down(migrator, db):\n"
        '    db.execute_sql("ALTER TABLE users DROP COLUMN IF EXISTS nickname")\n'
    )
    _sha, run = _release(world, "release 2", {"backend/mv_os/migrations/0100_rehearsal_nickname.py": migration})
    expect(run.code == 0, "release 2 failed on staging", run)
    notes["r2"] = _digest(run)
    main_sha, run = _promote(world)
    expect(run.code == 0, "release 2 failed on production", run)
    expect(world.serving("production") == notes["r2"], "production does not serve release 2", run)
    notes["main-r2"] = main_sha


def rerun_of_the_same_staging_run(world: World, notes: dict) -> None:
    sha = world.git("rev-parse", "origin/develop")
    run = world.run_workflow("deploy-staging.yml", sha, "develop")
    expect(run.code == 0, "a re-run failed", run)
    expect("nothing to do" in run.text and "built " not in run.text, "a re-run rebuilt or redeployed", run)


def hotfix_on_main_is_refused(world: World, notes: dict) -> None:
    world.checkout("main")
    sha = world.commit("hotfix straight on main", {"backend/mv_os/hotfix.txt": "quick\n"})
    world.push("main")
    run = world.run_workflow("deploy-production.yml", sha, "main")
    # The team reverts the stray commit on main (a forced reset keeps this rehearsal's history short).
    world.git("branch", "-f", "main", notes["main-r2"])
    world.git("push", "-q", "--force", "origin", "main")
    expect(run.code != 0, "a commit made on main reached production", run)
    expect(world.serving("production") == notes["r2"], "production changed", run)


def failed_production_smoke_rolls_back(world: World, notes: dict) -> None:
    broken = (world.clone / "backend/mv_os/api/health.py").read_text().replace(
        "def healthz():", 'def healthz():\n    if __import__("os").environ.get("NODE_ENV") == "production":\n'
        '        return {"error": {"code": "broken", "message": "production-only bug"}}, 500\n', 1
    )  # fmt: skip
    _, run = _release(world, "release 3 (a production-only bug)", {"backend/mv_os/api/health.py": broken})
    expect(run.code == 0, "release 3 failed on staging (the bug is production-only)", run)
    notes["r3"] = _digest(run)
    _, run = _promote(world)
    expect(run.code != 0, "production smoke did not fail", run)
    expect("rolled back: production smoke failed" in run.text, "no automatic rollback", run)
    expect(world.serving("production") == notes["r2"], "production does not serve release 2 again", run)
    world.checkout("develop")
    fixed = (world.clone / "backend/mv_os/api/health.py").read_text().split("    if __import__")[0]
    rest = (world.clone / "backend/mv_os/api/health.py").read_text().split('production-only bug"}}, 500\n', 1)[1]
    _sha, run = _release(world, "release 4 (fix)", {"backend/mv_os/api/health.py": fixed + rest})
    expect(run.code == 0, "the fix failed on staging", run)
    notes["r4"] = _digest(run)
    main_sha, run = _promote(world)
    expect(run.code == 0 and world.serving("production") == notes["r4"], "the fix did not reach production", run)
    notes["main-r4"] = main_sha


def manual_rollback_rules(world: World, notes: dict) -> None:
    world.checkout("develop")
    _sha, run = _release(world, "a develop build that never reaches main")
    expect(run.code == 0, "the develop-only build failed on staging", run)
    never = _digest(run)
    refused = world.run_workflow("rollback.yml", notes["main-r4"], "main", environment="production", to=never)
    expect(refused.code != 0 and "never ran on production" in refused.text, "a never-promoted digest", refused)
    expect(world.serving("production") == notes["r4"], "production changed on a refused rollback", refused)
    run = world.run_workflow("rollback.yml", notes["main-r4"], "main", environment="production")
    expect(run.code == 0, "the rollback to the previous production digest failed", run)
    expect(world.serving("production") == notes["r2"], "production does not serve the previous digest", run)
    notes["rolled-back-to"] = notes["r2"]


def release_1_runs_on_release_2s_schema(world: World, notes: dict) -> None:
    """Release 2 added a column; production rolled back to release 1 on that schema and its smoke passes."""
    run = world.run_workflow("rollback.yml", notes["main-r4"], "main", environment="production", to=notes["r1"])
    expect(run.code == 0, "release 1 does not run on release 2's schema", run)
    expect(world.serving("production") == notes["r1"], "production does not serve release 1", run)
    expect("PASS readyz" in run.text and "PASS garbage-bearer-token" in run.text, "release 1's smoke", run)


def stale_rerun_of_an_old_production_run(world: World, notes: dict) -> None:
    run = world.run_workflow("deploy-production.yml", notes["main-r1"], "main")
    expect(run.code != 0, "a re-run of release 1's production run deployed", run)
    expect("is not the tip of main" in run.text, "not refused as stale", run)
    expect(world.serving("production") == notes["r1"], "production changed", run)


def secret_rotation_reaches_both(world: World, notes: dict) -> None:
    """docs/release.md: rotate the value in Secrets Manager, then redeploy what runs (same digest).  Staging's
    smoke user password rotates the same way: the app takes the new one at start-up, and the smoke logs in with it."""
    for env, workflow, branch in (
        ("staging", "deploy-staging.yml", "develop"),
        ("production", "deploy-production.yml", "main"),
    ):
        name = world.envs[env].secrets["WHATSAPP_VERIFY_TOKEN"]
        value = "rotated-" + env + "-" + world.git("rev-parse", "--short", "HEAD")
        world.aws.secretsmanager.put_secret_value(SecretId=name, SecretString=value)
        smoke = world.envs[env].secrets.get("SMOKE_USER_PASSWORD")
        if smoke:
            world.aws.secretsmanager.put_secret_value(SecretId=smoke, SecretString=secrets.token_urlsafe(32))
        before = world.serving(env)
        sha = world.git("rev-parse", f"origin/{branch}")
        run = world.run_workflow(workflow, sha, branch, redeploy="1")
        expect(run.code == 0, f"the {env} redeploy failed", run)
        live = world.standin.services[world.envs[env].service].instance.environ()
        expect(live.get("WHATSAPP_VERIFY_TOKEN") == value, f"{env} does not run with the rotated value", run)
        if env == "staging":
            expect(world.serving(env) == before, "staging changed digest on a redeploy", run)
            expect("PASS login" in run.text, "the smoke user did not log in with the rotated password", run)


SCENARIOS: list[tuple[str, Callable[[World, dict], None]]] = [
    ("feature branch never deploys", feature_branch_never_deploys),
    ("develop -> staging deploys and records", develop_deploys_to_staging_and_records),
    ("develop -> main promotes the same digest", main_promotes_the_same_digest),
    ("back-merge main -> develop and the second release (no jam)", back_merge_and_second_release),
    ("re-run of the same staging run (idempotent)", rerun_of_the_same_staging_run),
    ("a hotfix committed straight on main is refused", hotfix_on_main_is_refused),
    ("a failed production smoke rolls back automatically", failed_production_smoke_rolls_back),
    ("manual rollback: previous production digest works, never-promoted refused", manual_rollback_rules),
    ("a migration added in release 2 leaves release 1 working after a rollback", release_1_runs_on_release_2s_schema),
    ("a stale re-run of an old production run is refused", stale_rerun_of_an_old_production_run),
    ("secret rotation reaches staging and production", secret_rotation_reaches_both),
]  # fmt: skip
# The short version `nox -s tests` runs (tests/rehearsal/test_rehearsal.py): the first three, so one release
# reaches production (a production-only start-up rule once broke the full rehearsal but not the short one).
SHORT = 3
