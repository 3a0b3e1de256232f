"""The short rehearsal inside `nox -s tests`: the first scenarios of `nox -s rehearse` (a feature branch refused;
develop -> staging deploys, smoke-tests and records; develop -> main promotes it to production) once per deploy
target, on moto, the target's stand-in running the image's real start command behind HTTPS, and real PostgreSQL.
`nox -s rehearse` plays the whole history."""

from __future__ import annotations

import os

import pytest

from tests.rehearsal.__main__ import run
from tests.rehearsal.scenarios import SCENARIOS, SHORT


@pytest.mark.slow
@pytest.mark.parametrize("target", ["apprunner", "ecs-express"])
def test_the_short_rehearsal_passes_every_scenario(target):
    saved = dict(os.environ)  # run() sets fake AWS credentials and the throwaway CA for this process
    lines: list[str] = []
    try:
        code = run(SCENARIOS[:SHORT], out=lines.append, target=target)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    assert [line.split(" (")[0] for line in lines] == [f"PASS {name}" for name, _ in SCENARIOS[:SHORT]], lines
    assert code == 0


def test_the_rehearsal_takes_its_steps_from_the_workflow_files():
    """The order the rehearsal runs is the workflows' own: a step moved there moves here."""
    from tests.rehearsal.world import ROOT, workflow_steps

    workflows = ROOT / ".github" / "workflows"
    assert workflow_steps(workflows / "deploy-staging.yml") == [
        ("deploy", "validated-digest"),
        ("deploy", "build"),
        ("deploy", "deploy"),
        ("deploy", "status"),
        ("record", "record"),
    ]
    assert workflow_steps(workflows / "deploy-production.yml") == [
        ("gate", "validated-digest"),
        ("gate", "plan"),
        ("gate", "status"),
        ("deploy", "validated-digest"),
        ("deploy", "deploy"),
    ]
    assert workflow_steps(workflows / "rollback.yml") == [("rollback", "rollback")]
