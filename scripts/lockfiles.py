"""The dependency lock: `uv.lock` is the lock, `requirements/<group>.txt` are hashed exports of it.

`check` answers one question, offline: does the committed lock satisfy pyproject.toml, and are the exports
exactly what the lock gives?  It never asks the package index, so a release published today cannot turn it red.
`export` rewrites the requirements files from uv.lock (after `uv lock`, which `nox -s lock` runs).

Usage: python scripts/lockfiles.py check|export [--root DIR]"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# requirements file -> dependency group exported with the project's own dependencies (None: those alone)
GROUPS = {"app": None, "pg": "pg", "test": "test", "lint": "lint", "release": "release"}


def _uv() -> str:
    uv = os.environ.get("UV") or shutil.which("uv")
    if not uv:
        sys.exit("lockfiles: uv not found (it is in the lint and test dependency groups; run through nox)")
    return uv


def _run(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # A private, empty cache: the answer must come from the committed files alone, never from what an earlier
    # run happened to download.
    with tempfile.TemporaryDirectory(prefix="mv-os-uv-cache-") as cache:
        env = {**os.environ, "UV_CACHE_DIR": cache, "UV_OFFLINE": "1", "UV_NO_PROGRESS": "1"}
        command = [_uv(), *args, "--python", sys.executable]
        return subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, check=False)


def exported(root: Path, group: str | None) -> str:
    args = ["export", "--frozen", "--no-emit-project", "--no-header", "--format", "requirements.txt", "--quiet"]
    result = _run(root, *args, *(["--group", group] if group else []))
    if result.returncode != 0:
        sys.exit(f"lockfiles: uv export failed: {result.stderr.strip().splitlines()[-1:]}")
    return result.stdout


def check(root: Path) -> list[str]:
    """Problems, one line each; empty when the lock satisfies pyproject.toml and the exports match it."""
    if not (root / "uv.lock").is_file():
        return ["uv.lock is missing: run `nox -s lock`"]
    locked = _run(root, "lock", "--check")
    if locked.returncode != 0:
        said = [line for line in locked.stderr.splitlines() if line.strip()][-1:]
        return [f"uv.lock does not satisfy pyproject.toml: run `nox -s lock -- --keep` (uv: {' '.join(said)})"]
    problems = []
    for name, group in GROUPS.items():
        path = root / "requirements" / f"{name}.txt"
        if not path.is_file() or path.read_text() != exported(root, group):
            problems.append(f"requirements/{name}.txt is not the export of uv.lock: run `nox -s lock -- --keep`")
    return problems


def export(root: Path) -> None:
    (root / "requirements").mkdir(exist_ok=True)
    for name, group in GROUPS.items():
        (root / "requirements" / f"{name}.txt").write_text(exported(root, group))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["check", "export"])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    args = parser.parse_args(argv)
    if args.command == "export":
        export(args.root)
        return 0
    problems = check(args.root)
    for line in problems:
        print(f"FAIL {line}", file=sys.stderr)
    if not problems:
        print("lock files: uv.lock satisfies pyproject.toml; requirements/*.txt are its exports")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
