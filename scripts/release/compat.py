"""The previous release's own API tests, run on the schema this checkout's migrations produce (`nox -s compat`).

A rollback (automatic after a failed smoke, or by hand) runs the previous image on the schema the new release
migrated forward, so the previous release must still work on it.  scripts/release/migrations.py refuses a drop
or rename that is not marked as a contract step; this check runs the old code itself: the previous release's tree
(`git archive`) with its `backend/mv_os/migrations/` replaced by this checkout's, its locked test requirements and
its API tests, on a fresh database per worker.  The noxfile drives it: `prepare`, then pytest, then `verdict`,
then `remove` (docs/release.md, "Migrations: expand, then contract").

Standard library only: the noxfile imports it before any venv exists."""

from __future__ import annotations

import ast
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

# The previous release's tests that exercise its API on a database: what a rollback puts in front of users.
API_TESTS = ("tests/backend/api", "tests/backend/webhooks", "tests/backend/messaging", "tests/backend/test_auth.py")
MIGRATIONS = Path("backend") / "mv_os" / "migrations"
REPORT = ".compat-report.xml"
DEFAULT_PYTEST = ("-q", "-n", "2")
USAGE = (
    "Usage: nox -s compat -- [--against REF] [PYTEST_ARGS...]  (REF defaults to origin/main, else main; "
    "e.g. nox -s compat -- --against v1.2.0 -x)"
)
SHOWN_FAILURES = 10


class UsageError(ValueError):
    pass


class CompatError(RuntimeError):
    """A problem that stops the check before any test runs; its text is one line."""


@dataclass
class Previous:
    """The previous release, exported with this checkout's migrations."""

    sha: str
    label: str  # how it was chosen, e.g. "origin/main^1, as origin/main is this tree"
    folder: Path
    tests: list[str]
    requirements: list[Path]
    added: list[str] = field(default_factory=list)  # migrations this checkout has and the previous release lacks
    changed: list[str] = field(default_factory=list)  # same name, other content
    missing: list[str] = field(default_factory=list)  # the previous release's migrations this checkout lacks

    @property
    def short(self) -> str:
        return self.sha[:7]


def parse_args(args: list[str]) -> tuple[str | None, list[str]]:
    """`[--against REF] [PYTEST_ARGS...]` -> (REF or None, the arguments for pytest)."""
    if args[:1] == ["--against"]:
        if len(args) < 2 or not args[1] or args[1].startswith("-"):
            raise UsageError(USAGE)
        return args[1], args[2:]
    if any(a == "--against" or a.startswith("--against=") for a in args):
        raise UsageError(USAGE)
    return None, args


def _git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=False)
    if done.returncode:
        raise CompatError(f"git {' '.join(args)}: {(done.stderr.strip().splitlines() or ['failed'])[-1]}")
    return done.stdout.strip()


def _commit(root: Path, ref: str) -> str | None:
    done = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() if done.returncode == 0 else None


def resolve(root: Path, against: str | None) -> tuple[str, str]:
    """(commit, label) of the previous release: REF, or REF's first parent when REF is this checkout's tree
    (on main, origin/main is HEAD itself: the release before it is its first parent)."""
    if against is None:
        against = "origin/main" if _commit(root, "origin/main") else "main"
    sha = _commit(root, against)
    if sha is None:
        raise CompatError(f"{against} is not a commit here (git fetch origin main, or --against REF)")
    if _git(root, "rev-parse", f"{sha}^{{tree}}") != _git(root, "rev-parse", "HEAD^{tree}"):
        return sha, against
    parent = _commit(root, f"{sha}^1")
    if parent is None:
        raise CompatError(
            f"{against} is this checkout's tree and has no parent here (a shallow clone? git fetch --deepen=1)"
        )
    return parent, f"{against}^1, as {against} is this tree"


def export(root: Path, sha: str) -> Path:
    """`git archive` of `sha` into a new folder under the clone's git-ignored .mv-os/."""
    state = root / ".mv-os"
    state.mkdir(exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f"compat-{sha[:7]}-", dir=state))
    archive = subprocess.run(["git", "-C", str(root), "archive", "--format=tar", sha], capture_output=True, check=False)
    if archive.returncode:
        shutil.rmtree(folder, ignore_errors=True)
        raise CompatError(f"git archive {sha[:7]}: {archive.stderr.decode(errors='replace').strip()}")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(folder, filter="data")
    return folder


def _migration_files(directory: Path) -> dict[str, bytes]:
    return {p.stem: p.read_bytes() for p in sorted(directory.glob("[0-9]*.py"))} if directory.is_dir() else {}


def swap_migrations(root: Path, folder: Path) -> tuple[list[str], list[str], list[str]]:
    """Replace the export's migrations with this checkout's; (added, changed, missing) by name."""
    old, new = _migration_files(folder / MIGRATIONS), _migration_files(root / MIGRATIONS)
    shutil.rmtree(folder / MIGRATIONS, ignore_errors=True)
    shutil.copytree(root / MIGRATIONS, folder / MIGRATIONS, ignore=shutil.ignore_patterns("__pycache__"))
    added = sorted(set(new) - set(old))
    changed = sorted(name for name in set(new) & set(old) if new[name] != old[name])
    return added, changed, sorted(set(old) - set(new))


def requirement_files(folder: Path) -> list[Path]:
    """The lock exports the previous release's own `tests` session installs (`_install(session, "<group>")`)."""
    groups: list[str] = []
    try:
        tree = ast.parse((folder / "noxfile.py").read_text())
    except (OSError, SyntaxError):
        tree = ast.Module(body=[], type_ignores=[])
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "tests":
            for call in ast.walk(node):
                if isinstance(call, ast.Call) and getattr(call.func, "id", "") == "_install":
                    groups += [a.value for a in call.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
    files = [folder / "requirements" / f"{group}.txt" for group in groups or ["test"]]
    if not all(f.is_file() for f in files):
        raise CompatError("the previous release has no requirements/test.txt to install its tests from")
    return files


def prepare(root: Path, against: str | None) -> Previous:
    """Resolve, export and re-migrate the previous release.  The caller removes `folder` (`remove`)."""
    sha, label = resolve(root, against)
    folder = export(root, sha)
    try:
        tests = [t for t in API_TESTS if (folder / t).exists()]
        if not tests:
            raise CompatError(f"{sha[:7]} has none of the API tests ({', '.join(API_TESTS)})")
        previous = Previous(sha, label, folder, tests, requirement_files(folder))
        previous.added, previous.changed, previous.missing = swap_migrations(root, folder)
    except BaseException:
        remove(folder)
        raise
    return previous


def pytest_args(previous: Previous, extra: list[str]) -> list[str]:
    """The previous release's API tests with its own conftest; extra arguments come last, so they win."""
    return [*DEFAULT_PYTEST, f"--junitxml={previous.folder / REPORT}", *previous.tests, *extra]


def pytest_env(root: Path, previous: Previous) -> dict[str, str]:
    """The old code first on the path.  Its embedded PostgreSQL (when no DATABASE_URL/TEST_DATABASE_URL) keeps
    its data in this clone's .mv-os/, where `nox -s tests` keeps it, unless MV_OS_STATE_DIR says otherwise."""
    env = {"PYTHONPATH": os.pathsep.join([str(previous.folder / "backend"), str(previous.folder)])}
    if not os.environ.get("MV_OS_STATE_DIR"):
        env["MV_OS_STATE_DIR"] = str(root / ".mv-os")
    return env


def _node_id(folder: Path, classname: str, name: str) -> str:
    """junit's dotted classname back to pytest's node id (tests/x/test_y.py::Class::test)."""
    parts = classname.split(".") if classname else []
    for cut in range(len(parts), 0, -1):
        path = "/".join(parts[:cut]) + ".py"
        if (folder / path).is_file():
            return "::".join([path, *parts[cut:], name])
    return "::".join([*parts, name]) if parts else name


def _describe(previous: Previous) -> str:
    if previous.added:
        count = len(previous.added)
        said = f"{count} migration{'s' if count > 1 else ''} added since: {', '.join(previous.added)}"
    else:
        said = "no migration added since"
    if previous.changed:
        said += f"; changed since {previous.short}: {', '.join(previous.changed)}"
    if previous.missing:
        said += f"; {previous.short} has migrations this checkout lacks: {', '.join(previous.missing)} (merge it)"
    return said


def verdict(previous: Previous) -> tuple[bool, str]:
    """One line from pytest's junit report: PASS when every selected API test passed."""
    what = f"API tests of {previous.short} ({previous.label})"
    one = f"API test of {previous.short} ({previous.label})"
    schema = _describe(previous)
    try:
        root = ET.parse(previous.folder / REPORT).getroot()  # noqa: S314 - written by the pytest run just now
    except (OSError, ET.ParseError):
        return False, f"FAIL compat: pytest wrote no report for the {what} (see its output above); {schema}"
    passed, skipped, failed = 0, 0, []
    for case in root.iter("testcase"):
        outcomes = {child.tag for child in case}
        if outcomes & {"failure", "error"}:
            failed.append(_node_id(previous.folder, case.get("classname", ""), case.get("name", "")))
        elif "skipped" in outcomes:
            skipped += 1
        else:
            passed += 1
    if failed:
        shown = ", ".join(dict.fromkeys(failed[:SHOWN_FAILURES]))
        more = f" and {len(failed) - SHOWN_FAILURES} more" if len(failed) > SHOWN_FAILURES else ""
        total = passed + len(failed)
        return False, f"FAIL compat: {len(failed)} of {total} {what} fail on this schema ({schema}): {shown}{more}"
    if not passed:
        return False, f"FAIL compat: no API test of {previous.short} ran (a -k or -m that selects nothing?); {schema}"
    also = f", {skipped} skipped" if skipped else ""
    counted = f"1 {one} passes" if passed == 1 else f"{passed} {what} pass"
    return True, f"PASS compat: {counted} on this schema{also} ({schema})"


def remove(folder: Path, timeout: float = 60.0) -> None:
    """Delete the export, once an embedded PostgreSQL the old code may have started inside it has stopped."""
    watchdog = folder / ".mv-os" / "pgdata.users" / "watchdog"
    deadline = time.monotonic() + timeout
    while watchdog.is_file() and time.monotonic() < deadline:
        try:
            os.kill(int(watchdog.read_text()), 0)
        except (ValueError, OSError):
            break
        time.sleep(0.1)
    shutil.rmtree(folder, ignore_errors=True)
