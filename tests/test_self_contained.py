"""The project stands alone (a clone on GitHub has no folder beside it); test output never shows the environment."""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUTSIDE = re.compile(r"\.\./" + r"shared|parents?\[?\d*\]?\s*/\s*[\"']" + r"shared[\"']")


def tracked(*patterns: str) -> list[Path]:
    out = subprocess.run(["git", "ls-files", "--", *patterns], cwd=ROOT, capture_output=True, text=True, check=True)
    return [ROOT / name for name in out.stdout.splitlines() if (ROOT / name).is_file()]


def test_no_file_reaches_outside_the_clone():
    offenders = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in tracked(".")
        if path.suffix != ".md" and path.name != "uv.lock"
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if OUTSIDE.search(line)
    ]
    assert offenders == []


def _mentions_environ(node: ast.AST) -> bool:
    return any(isinstance(n, ast.Attribute) and n.attr == "environ" for n in ast.walk(node))


def test_no_test_asserts_on_os_environ():
    """pytest prints every value in a failed assert's expression: `assert os.environ...` would print them all."""
    offenders = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for path in tracked("tests/*.py", "tests/**/*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Assert) and _mentions_environ(node)
    ]
    assert offenders == []
