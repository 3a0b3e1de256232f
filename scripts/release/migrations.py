"""Expand/contract: a migration's `up()` may not drop or rename (or make a column NOT NULL, or change its type)
unless it is marked as the contract step of an earlier expand migration.

Migrations run forward when a container starts, and a rollback runs the previous image on the new schema, so
the previous release must keep working on it (docs/release.md, "Migrations: expand, then contract").  A contract
migration says which expand it completes, with a module constant:

    CONTRACT_OF = "0004_add_display_name"   # the earlier migration that added what replaces the dropped part

and belongs to a release after the one that shipped that expand.  `python -m scripts.release.migrations [DIR]`
prints one line per problem and exits 1 if there is any; tests/release/test_migrations.py runs it on the real
migrations."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

DEFAULT_DIR = Path(__file__).resolve().parents[2] / "backend" / "mv_os" / "migrations"
# SQL that breaks the release before it (DROP INDEX does not: the old code never names an index).
BREAKING_SQL = re.compile(
    r"\bDROP\s+(TABLE|COLUMN|VIEW|SCHEMA|TYPE|CONSTRAINT)\b|\bRENAME\b|\bALTER\s+COLUMN\s+\S+\s+(TYPE|SET\s+NOT\s+NULL)\b",
    re.IGNORECASE,
)
# playhouse.migrate operations with the same effect.
BREAKING_CALLS = {"drop_column", "drop_table", "rename_column", "rename_table", "add_not_null", "alter_column_type"}


def _up(tree: ast.Module) -> ast.FunctionDef | None:
    return next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "up"), None)


def _contract_of(tree: ast.Module) -> str | None:
    for node in tree.body:
        named = isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "CONTRACT_OF" for t in node.targets)
        if named and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            return node.value.value
    return None


def breaking_statements(source: str) -> list[str]:
    """What `up()` does that the previous release could not survive."""
    up = _up(ast.parse(source))
    if up is None:
        return []
    found = []
    for node in ast.walk(up):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and (m := BREAKING_SQL.search(node.value)):
            found.append(" ".join(m.group(0).split()).upper())
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) in BREAKING_CALLS:
            found.append(f"{node.func.attr}()")
    return found


def check(directory: Path = DEFAULT_DIR) -> list[str]:
    files = sorted(p for p in directory.glob("[0-9]*.py"))
    names = [p.stem for p in files]
    problems = []
    for index, path in enumerate(files):
        source = path.read_text()
        breaking = breaking_statements(source)
        if not breaking:
            continue
        expand = _contract_of(ast.parse(source))
        what = ", ".join(sorted(set(breaking)))
        if expand is None:
            problems.append(
                f"{path.name}: up() does {what}, which breaks the release before it after a rollback; add the new "
                "shape in an expand migration first, then drop or rename in a later release with "
                'CONTRACT_OF = "<that expand migration>"'
            )
        elif expand not in names[:index]:
            problems.append(f"{path.name}: CONTRACT_OF = {expand!r} is not an earlier migration in {directory.name}/")
    return problems


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    problems = check(Path(args[0]) if args else DEFAULT_DIR)
    for line in problems:
        print(f"FAIL expand-contract: {line}")
    if not problems:
        print("PASS expand-contract: no migration drops or renames outside a contract step")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
