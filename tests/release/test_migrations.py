"""Expand/contract (scripts/release/migrations.py): the real migrations pass, and a migration that drops or
renames is refused unless it names an earlier expand migration as the one it completes."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.release import migrations

EXPAND = """def up(migrator, db):
    db.execute_sql("ALTER TABLE users ADD COLUMN display_name text NULL")
"""


def _write(directory: Path, name: str, body: str) -> None:
    (directory / f"{name}.py").write_text(body)


def test_the_real_migrations_keep_the_previous_release_working():
    assert migrations.check() == []
    assert migrations.main([]) == 0


@pytest.mark.parametrize(
    "statement",
    [
        'db.execute_sql("ALTER TABLE users DROP COLUMN name")',
        'db.execute_sql("ALTER TABLE users RENAME COLUMN name TO display_name")',
        'db.execute_sql("DROP TABLE contacts")',
        'db.execute_sql("ALTER TABLE users ALTER COLUMN display_name SET NOT NULL")',
        "migrator.drop_column('users', 'name')",
        "migrator.rename_table('users', 'people')",
    ],
)
def test_a_drop_or_rename_without_a_contract_marker_is_refused(tmp_path, statement, capsys):
    _write(tmp_path, "0004_expand", EXPAND)
    _write(tmp_path, "0005_contract", f"def up(migrator, db):\n    {statement}\n")
    problems = migrations.check(tmp_path)
    assert len(problems) == 1 and problems[0].startswith("0005_contract.py: up() does ")
    assert migrations.main([str(tmp_path)]) == 1
    assert "FAIL expand-contract: 0005_contract.py" in capsys.readouterr().out


def test_a_contract_step_of_an_earlier_expand_is_allowed(tmp_path):
    _write(tmp_path, "0004_expand", EXPAND)
    _write(
        tmp_path,
        "0005_contract",
        'CONTRACT_OF = "0004_expand"\n\n\n'
        'def up(migrator, db):\n    db.execute_sql("ALTER TABLE users DROP COLUMN name")\n',
    )
    assert migrations.check(tmp_path) == []


def test_a_contract_marker_must_name_an_earlier_migration(tmp_path):
    _write(
        tmp_path,
        "0004_contract",
        'CONTRACT_OF = "0005_expand"\n\n\ndef up(migrator, db):\n    db.execute_sql("DROP TABLE x")\n',
    )
    _write(tmp_path, "0005_expand", EXPAND)
    assert "is not an earlier migration" in migrations.check(tmp_path)[0]


def test_drops_in_down_and_index_drops_are_fine(tmp_path):
    _write(
        tmp_path,
        "0004_x",
        'def up(migrator, db):\n    db.execute_sql("DROP INDEX IF EXISTS old_idx")\n\n\n'
        'def down(migrator, db):\n    db.execute_sql("DROP TABLE x")\n',
    )
    assert migrations.check(tmp_path) == []
