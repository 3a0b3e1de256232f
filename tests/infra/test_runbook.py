"""docs/aws-setup.md: every step says how it is tested or that it needs a real account, and what it names exists
(nox sessions, test files, test functions, stack outputs), so the runbook cannot drift from the code."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from scripts.infra.template import TEMPLATES, load

ROOT = Path(__file__).resolve().parents[2]
RUNBOOK = (ROOT / "docs" / "aws-setup.md").read_text()


def _sessions() -> set[str]:
    names = set()
    for node in ast.walk(ast.parse((ROOT / "noxfile.py").read_text())):
        if isinstance(node, ast.FunctionDef):
            for deco in node.decorator_list:
                if "nox.session" in ast.unparse(deco):
                    named = [k.value.value for k in getattr(deco, "keywords", []) if k.arg == "name"]
                    names.add(named[0] if named else node.name)
    return names


def test_every_step_is_tested_or_marked_as_needing_a_real_account():
    steps = re.findall(r"^## (\d+)\. (.+)$", RUNBOOK, flags=re.MULTILINE)
    assert [int(n) for n, _ in steps] == list(range(len(steps))) and len(steps) >= 10
    for number, title in steps:
        assert title.endswith(("(tested)", "(needs a real account)", "(needs a real repository)",
                               "(needs a real account and repository)")), f"step {number}: {title}"  # fmt: skip


def test_every_nox_session_it_names_exists():
    named = set(re.findall(r"nox -s ([\w-]+)", RUNBOOK))
    assert {"infra", "tests", "deploy", "validated-digest", "github-settings", "audit"} <= named
    assert named <= _sessions()


def test_every_test_it_cites_exists():
    files = set(re.findall(r"`(tests/[\w/]+\.py)`", RUNBOOK))
    assert files and all((ROOT / f).is_file() for f in files), files
    cited = set(re.findall(r"`(test_\w+)`", RUNBOOK))
    defined = {m for f in files for m in re.findall(r"^def (test_\w+)", (ROOT / f).read_text(), flags=re.MULTILINE)}
    assert cited and cited <= defined, cited - defined


def test_the_stack_outputs_it_uses_exist():
    outputs = set(load(TEMPLATES / "shared.yaml")["Outputs"])
    used = set(re.findall(r"<(\w+(?:Arn|Uri))>", RUNBOOK))
    assert used and used <= outputs, used - outputs
