"""The secret scan: a finding fails with file:line, a pragma allows one line, the baseline regenerates byte for
byte, and a baseline that no longer matches the files fails `--fresh` (what `nox -s lint` runs)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
AWS_KEY = "AKIA" + "IOSFODNN7EXAMPLE"  # AWS's documented example key, built so this file holds no finding


def check(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "check_secrets.py"), "--baseline", "baseline.json", *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "app.py").write_text('NAME = "mv-os"\n')
    (tmp_path / "fixture.py").write_text(f'KEY = "{AWS_KEY}"  # pragma: allowlist secret (AWS documentation)\n')
    assert check(tmp_path, "--write-baseline", "app.py", "fixture.py").returncode == 0
    return tmp_path


def test_regenerating_the_baseline_on_an_unchanged_tree_changes_nothing(tree: Path) -> None:
    first = (tree / "baseline.json").read_bytes()
    assert check(tree, "--write-baseline", "app.py", "fixture.py").returncode == 0
    assert (tree / "baseline.json").read_bytes() == first
    assert b'"results": {}' in first
    assert b"generated_at" not in first


def test_a_new_secret_fails_with_its_file_and_line(tree: Path) -> None:
    (tree / "app.py").write_text(f'NAME = "mv-os"\nKEY = "{AWS_KEY}"\n')
    result = check(tree, "--fresh", "app.py", "fixture.py")
    assert result.returncode == 1
    assert "possible secret: app.py:2: AWS Access Key" in result.stderr
    assert AWS_KEY not in result.stdout + result.stderr


def test_a_baseline_that_no_longer_matches_the_files_fails_fresh(tree: Path) -> None:
    (tree / "old.py").write_text(f'KEY = "{AWS_KEY}"\n')
    assert check(tree, "--write-baseline", "app.py", "fixture.py", "old.py").returncode == 0
    (tree / "old.py").write_text("KEY = None\n")
    assert check(tree, "app.py", "fixture.py", "old.py").returncode == 0  # pre-commit's partial runs: no staleness
    result = check(tree, "--fresh", "app.py", "fixture.py", "old.py")
    assert result.returncode == 1
    assert "out of date" in result.stderr and "nox -s secrets-baseline" in result.stderr
