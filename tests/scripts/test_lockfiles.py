"""The lock check answers "does the committed lock satisfy pyproject.toml?" from the committed files alone.

Each test runs scripts/lockfiles.py on a copy of the repository's dependency files, offline and with an empty
uv cache, as `nox -s lint` does: a release published on the index today cannot change its answer."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    for name in ("pyproject.toml", "uv.lock", "README.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "requirements", tmp_path / "requirements")
    return tmp_path


def run_check(root: Path) -> subprocess.CompletedProcess[str]:
    # No uv cache, no user config: only the copied files can answer (the script runs uv with UV_OFFLINE=1).
    env = {"PATH": str(Path(sys.executable).parent), "HOME": str(root), "UV_NO_CONFIG": "1"}
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "lockfiles.py"), "check", "--root", str(root)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_the_committed_lock_passes_offline_with_an_empty_cache(project: Path) -> None:
    result = run_check(project)
    assert result.returncode == 0, result.stderr
    assert "uv.lock satisfies pyproject.toml" in result.stdout


def test_a_requirement_the_lock_does_not_satisfy_fails_and_names_the_fix(project: Path) -> None:
    pyproject = project / "pyproject.toml"
    text = pyproject.read_text()
    assert '"requests>=2.32",' in text
    pyproject.write_text(text.replace('"requests>=2.32",', '"requests>=99",', 1))
    result = run_check(project)
    assert result.returncode == 1
    assert "uv.lock does not satisfy pyproject.toml" in result.stderr
    assert "nox -s lock" in result.stderr


def test_a_new_dependency_missing_from_the_lock_fails(project: Path) -> None:
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"pyjwt>=2.10",', '"pyjwt>=2.10",\n    "attrs>=20",', 1))
    result = run_check(project)
    assert result.returncode == 1
    assert "uv.lock does not satisfy pyproject.toml" in result.stderr


def test_an_export_edited_by_hand_fails(project: Path) -> None:
    app = project / "requirements" / "app.txt"
    app.write_text(app.read_text().replace("flask==", "flask>=", 1))
    result = run_check(project)
    assert result.returncode == 1
    assert "requirements/app.txt is not the export of uv.lock" in result.stderr
    assert "requirements/test.txt" not in result.stderr


def test_every_install_lock_is_pinned_with_hashes() -> None:
    for path in sorted((ROOT / "requirements").glob("*.txt")):
        requirements = [line for line in path.read_text().splitlines() if line and line[0].isalnum()]
        assert requirements, path
        for line in requirements:
            assert "==" in line, (path.name, line)
        assert path.read_text().count("--hash=sha256:") >= len(requirements), path.name
