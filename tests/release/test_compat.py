"""`nox -s compat`: the previous release's own API tests on this checkout's schema.

A throwaway git repository holds this checkout's files as "the release" on main; a feature branch then adds a
migration and runs the real `python3 -m nox -s compat` in it (a narrow `-k` keeps each run short).  An expand
migration passes; a contract migration that drops a column the release uses fails, naming the failing test,
although the static expand/contract check lets it through (it is marked CONTRACT_OF).  Both runs share one
repository and so one session venv (a venv costs seconds to create and to delete)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mv_os.localdb import STATE_DIR
from scripts.release import compat, migrations
from tests.support.servers import ROOT

NOX = [os.environ.get("MV_OS_NOX_PYTHON") or sys.executable, "-m", "nox"]
# One test that needs the `user` row (users.display_name) and one that needs no user at all.
SELECTION = ["-n", "0", "-k", "test_login_returns_a_bearer_token or test_me_requires_a_bearer_token"]
LOGIN_TEST = "tests/backend/test_auth.py::test_login_returns_a_bearer_token"

EXPAND = '''"""Users get an optional nickname (expand: the previous release ignores it)."""


def up(migrator, db):
    db.execute_sql("ALTER TABLE users ADD COLUMN nickname text NULL")
'''
CONTRACT = '''"""Nicknames replace display names (the contract step)."""

CONTRACT_OF = "0005_add_nickname"


def up(migrator, db):
    db.execute_sql("ALTER TABLE users DROP COLUMN display_name")
'''


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def repo(state_dir: Path) -> Path:
    """This checkout's files (tracked and new, as a commit would hold them) committed as the release on main,
    with a feature branch checked out."""
    repo = state_dir / "repo"
    listed = git(ROOT, "ls-files", "--cached", "--others", "--exclude-standard", "-z").split("\0")
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, repo / name)
    git(repo, "init", "-q", "-b", "main")
    for key, value in (("user.email", "team@example.com"), ("user.name", "Compat"), ("commit.gpgsign", "false")):
        git(repo, "config", key, value)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "release 1")
    git(repo, "checkout", "-q", "-b", "feature")
    return repo


def add_migration(repo: Path, name: str, source: str) -> None:
    (repo / compat.MIGRATIONS / f"{name}.py").write_text(source)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", name)


def run_compat(repo: Path, *args: str) -> subprocess.CompletedProcess:
    """`python3 -m nox -s compat` in the repository, as a person types it; its PostgreSQL is the suite's (the
    same DATABASE_URL/TEST_DATABASE_URL, else the same embedded server's state folder)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["MV_OS_STATE_DIR"] = str(STATE_DIR)
    return subprocess.run(
        [*NOX, "-s", "compat", "--", *args],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def verdicts(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stdout.splitlines() if line.startswith(("PASS compat", "FAIL compat"))]


def exports_left(repo: Path) -> list[str]:
    return [p.name for p in (repo / ".mv-os").glob("compat-*")]


@pytest.mark.slow
def test_an_expand_passes_and_a_contract_in_the_same_release_fails_naming_the_tests(repo):
    """Release 2 adds nicknames (expand): the release on main still passes its tests.  Release 2 then also drops
    display names (its contract step, marked, so the static check lets it through): the release on main still
    reads them, so a rollback would break it, and compat fails naming the test that shows it."""
    release = git(repo, "rev-parse", "main")[:7]
    add_migration(repo, "0005_add_nickname", EXPAND)
    result = run_compat(repo, *SELECTION)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert verdicts(result) == [
        f"PASS compat: 2 API tests of {release} (main) pass on this schema (1 migration added since: 0005_add_nickname)"
    ], output[-4000:]
    assert exports_left(repo) == []

    add_migration(repo, "0006_drop_display_name", CONTRACT)
    assert migrations.check(repo / compat.MIGRATIONS) == [], "the static check lets a marked contract through"
    result = run_compat(repo, "--against", "main", *SELECTION)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-4000:]
    assert verdicts(result) == [
        f"FAIL compat: 1 of 2 API tests of {release} (main) fail on this schema "
        f"(2 migrations added since: 0005_add_nickname, 0006_drop_display_name): {LOGIN_TEST}"
    ], output[-4000:]
    assert 'column "display_name"' in output, "pytest's own report of the failure is shown"
    assert exports_left(repo) == []


@pytest.fixture
def history(tmp_path: Path) -> Path:
    """Two commits on main, the second checked out."""
    for message in ("release 1", "release 2"):
        (tmp_path / "notes.txt").write_text(message)
        if message == "release 1":
            git(tmp_path, "init", "-q", "-b", "main")
            git(tmp_path, "config", "user.email", "team@example.com")
            git(tmp_path, "config", "user.name", "Compat")
        git(tmp_path, "add", "-A")
        git(tmp_path, "-c", "commit.gpgsign=false", "commit", "-q", "-m", message)
    return tmp_path


def test_on_main_the_previous_release_is_the_first_parent(history):
    """In a clean clone of main, origin/main is HEAD: checking HEAD against itself would prove nothing."""
    git(history, "update-ref", "refs/remotes/origin/main", "HEAD")
    assert compat.resolve(history, None) == (
        git(history, "rev-parse", "HEAD^1"),
        "origin/main^1, as origin/main is this tree",
    )


def test_a_ref_with_another_tree_is_the_previous_release_itself(history):
    git(history, "branch", "release-1", "HEAD^1")
    git(history, "checkout", "-q", "-b", "feature")
    (history / "notes.txt").write_text("feature work")
    git(history, "-c", "commit.gpgsign=false", "commit", "-q", "-am", "feature")
    assert compat.resolve(history, None) == (git(history, "rev-parse", "main"), "main")
    assert compat.resolve(history, "release-1") == (git(history, "rev-parse", "release-1"), "release-1")


def test_an_unknown_ref_is_one_line_naming_it(history):
    with pytest.raises(compat.CompatError, match=r"^v9\.9\.9 is not a commit here \(git fetch origin main"):
        compat.resolve(history, "v9.9.9")


@pytest.mark.parametrize("args", [["--against"], ["--against", "-x"], ["-x", "--against", "main"]])
def test_bad_arguments_stop_the_session_with_its_usage(args):
    result = subprocess.run(
        [*NOX, "-f", str(ROOT / "noxfile.py"), "-s", "compat", "--", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode != 0
    assert "Usage: nox -s compat -- [--against REF] [PYTEST_ARGS...]" in result.stderr
    assert "pip install" not in result.stderr, "nothing was installed or run"


def _report(folder: Path, failed: int, passed: int, skipped: int = 0) -> compat.Previous:
    """A junit report as pytest writes it, in an exported previous release that has tests/backend/api."""
    case = '<testcase classname="tests.backend.{}" name="test_{}{}">{}</testcase>'
    cases = [case.format("api.test_api", "f", i, "<failure/>") for i in range(failed)]
    cases += [case.format("test_auth", "p", i, "") for i in range(passed)]
    cases += [case.format("test_auth", "s", i, "<skipped/>") for i in range(skipped)]
    (folder / "tests" / "backend" / "api").mkdir(parents=True)
    (folder / "tests" / "backend" / "api" / "test_api.py").touch()
    (folder / compat.REPORT).write_text(f"<testsuites><testsuite>{''.join(cases)}</testsuite></testsuites>")
    return compat.Previous("0123456789abcdef", "origin/main", folder, list(compat.API_TESTS), [])


@pytest.mark.unit
def test_a_long_failure_list_is_cut_and_every_schema_difference_is_named(tmp_path):
    previous = _report(tmp_path, failed=12, passed=3)
    previous.changed, previous.missing = ["0004_hardening"], ["0005_from_main"]
    passed, line = compat.verdict(previous)
    assert not passed
    assert line.startswith(
        "FAIL compat: 12 of 15 API tests of 0123456 (origin/main) fail on this schema (no migration added since; "
        "changed since 0123456: 0004_hardening; 0123456 has migrations this checkout lacks: 0005_from_main "
        "(merge it)): tests/backend/api/test_api.py::test_f0, "
    )
    assert line.endswith("tests/backend/api/test_api.py::test_f9 and 2 more")


@pytest.mark.unit
def test_skips_are_counted_and_a_run_without_a_report_or_a_test_fails(tmp_path):
    previous = _report(tmp_path, failed=0, passed=1, skipped=2)
    assert compat.verdict(previous) == (
        True,
        "PASS compat: 1 API test of 0123456 (origin/main) passes on this schema, 2 skipped (no migration added since)",
    )
    (tmp_path / compat.REPORT).write_text("<testsuites><testsuite/></testsuites>")
    assert compat.verdict(previous)[1].startswith("FAIL compat: no API test of 0123456 ran")
    (tmp_path / compat.REPORT).unlink()
    assert compat.verdict(previous)[1].startswith("FAIL compat: pytest wrote no report for the API tests of 0123456")


@pytest.mark.unit
def test_the_export_gets_exactly_this_checkouts_migrations(tmp_path):
    checkout, export = tmp_path / "checkout", tmp_path / "export"
    for folder, files in (
        (checkout, {"0001_initial": "A", "0002_edited": "B2", "0003_new": EXPAND}),
        (export, {"0001_initial": "A", "0002_edited": "B", "0009_only_there": "C"}),
    ):
        (folder / compat.MIGRATIONS).mkdir(parents=True)
        for name, body in files.items():
            (folder / compat.MIGRATIONS / f"{name}.py").write_text(body)
    assert compat.swap_migrations(checkout, export) == (["0003_new"], ["0002_edited"], ["0009_only_there"])
    assert sorted(p.name for p in (export / compat.MIGRATIONS).iterdir()) == [
        "0001_initial.py",
        "0002_edited.py",
        "0003_new.py",
    ]
    assert (export / compat.MIGRATIONS / "0002_edited.py").read_text() == "B2"
