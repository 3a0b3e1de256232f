"""The command line as a person runs it: no AWS credentials on a feature branch prints the refusal."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.release import cli
from tests.release.conftest import digest_of, image_ref

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def no_aws(monkeypatch, tmp_path):
    for var in list(os.environ):
        if var.startswith("AWS_"):
            monkeypatch.delenv(var)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def test_plan_production_on_a_feature_branch_prints_the_refusal(repo, no_aws, capsys):
    repo.git("checkout", "-q", "-b", "feature/new-inbox")
    assert cli.main(["plan", "production", "--image", image_ref(digest_of("x"))], repo=repo.path) == 1
    out = capsys.readouterr().out
    assert "FAIL branch: feature/new-inbox may not deploy to production." in out
    assert "App Runner is never used for feature iteration, UI testing or debugging" in out
    assert "FAIL aws-credentials: AWS credentials are missing" in out
    assert "FAIL secrets-namespace: AWS credentials are missing" in out
    assert "PASS image-digest" in out
    assert '"AutoDeploymentsEnabled": false' in out  # the request it would send is printed
    assert '"NODE_ENV": "production"' in out
    assert out.rstrip().endswith("plan: REFUSED for production")


def test_deploy_without_credentials_changes_nothing(repo, no_aws, capsys):
    assert cli.main(["deploy", "staging", "--image", image_ref(digest_of("x"))], repo=repo.path) == 1
    assert "deploy REFUSED: nothing was changed" in capsys.readouterr().out


def test_local_is_not_a_deploy_target(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["plan", "local"])
    assert exit_.value.code == 2
    assert "invalid choice: 'local'" in capsys.readouterr().err


@pytest.mark.slow
def test_module_entry_point_runs(repo, no_aws):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "-m", "scripts.release", "plan", "staging"],
        cwd=repo.path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stdout.splitlines()[0] == "PASS branch (develop -> staging)"
    assert "FAIL image-digest: no image given" in done.stdout


@pytest.mark.parametrize(
    ("command", "args", "ok"),
    [
        ("deploy", ["staging", "--image", "x"], True),
        ("deploy", ["staging"], False),
        ("deploy", ["local", "--image", "x"], False),
        ("record", ["production", "--image", "x"], False),
        ("record", ["staging", "--image=x"], True),
        ("validated-digest", ["staging"], True),
        ("audit", [], True),
        ("audit", ["--values"], True),
        ("audit", ["staging"], False),
        ("rollback", [], False),
    ],
)
def test_the_usage_lines_live_in_one_place(command, args, ok):
    """noxfile.py checks session arguments with scripts/release/usage.py, whose lines the CLI's --help shows too."""
    from scripts.release.usage import USAGE, check

    assert check(command, args) == (None if ok else USAGE[command])
    assert USAGE[command] in cli._parser().format_help()
