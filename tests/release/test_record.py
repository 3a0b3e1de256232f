"""The release records in SSM Parameter Store (moto): the write-once staging-validated record and production's
append-only, hash-chained history."""

from __future__ import annotations

import json

import boto3
import pytest

from scripts.release.record import HISTORY, VALIDATED, ProductionHistory, RecordError, StagingRecord
from tests.release.conftest import REGION, digest_of

TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"  # pragma: allowlist secret (git's empty tree id)
SHA = "a" * 40


@pytest.fixture
def ssm(moto):
    return boto3.client("ssm", region_name=REGION)


def test_write_then_read_names_the_same_digest(ssm):
    record = StagingRecord(ssm)
    assert record.read(TREE) is None
    record.write(TREE, digest_of("build"), SHA, "run-1")
    found = record.read(TREE)
    assert (found.digest, found.git_sha, found.run) == (digest_of("build"), SHA, "run-1")


def test_writing_the_same_record_again_is_fine(ssm):
    record = StagingRecord(ssm)
    record.write(TREE, digest_of("build"), SHA, "run-1")
    record.write(TREE, digest_of("build"), "b" * 40, "run-2")  # the back-merge: another commit, same tree
    assert record.read(TREE).run == "run-1"


def test_a_record_never_moves_to_another_digest(ssm):
    record = StagingRecord(ssm)
    record.write(TREE, digest_of("build-1"), SHA, "run-1")
    with pytest.raises(RecordError, match="a record never moves"):
        record.write(TREE, digest_of("build-2"), SHA, "run-2")
    assert record.read(TREE).digest == digest_of("build-1")


def test_an_overwritten_record_is_refused(ssm):
    """Someone with more rights than any release role rewrote the record: it no longer counts."""
    StagingRecord(ssm).write(TREE, digest_of("build-1"), SHA, "run-1")
    forged = {"tree": TREE, "digest": digest_of("evil"), "git_sha": SHA, "run": "run-1"}
    ssm.put_parameter(Name=f"{VALIDATED}/{TREE}", Value=json.dumps(forged), Type="String", Overwrite=True)
    with pytest.raises(RecordError, match="overwritten"):
        StagingRecord(ssm).read(TREE)


def _ran(history: ProductionHistory, label: str, kind: str = "deploy"):
    return history.append(
        digest=digest_of(label),
        image=f"x@{digest_of(label)}",
        tree=TREE,
        git_sha=SHA,
        run="run",
        kind=kind,
        at="2026-12-06T23:00:00+00:00",
        configuration={"RuntimeEnvironmentVariables": {"NODE_ENV": "production", "LABEL": label}},
    )


def test_history_appends_in_order_and_finds_what_ran(ssm):
    history = ProductionHistory(ssm)
    assert history.latest() is None and history.previous() is None
    for label in ("r1", "r2", "r3"):
        _ran(history, label)
    assert [e.seq for e in history.entries()] == [1, 2, 3]
    assert history.latest().digest == digest_of("r3")
    assert history.previous().digest == digest_of("r2")
    assert history.find(digest_of("r1")).configuration["RuntimeEnvironmentVariables"]["LABEL"] == "r1"
    assert history.find(digest_of("never")) is None


def test_history_with_more_than_one_page(ssm):
    history = ProductionHistory(ssm)
    for n in range(12):
        _ran(history, f"r{n}")
    assert len(history.entries()) == 12


def test_a_removed_or_rewritten_history_entry_breaks_the_chain(ssm):
    history = ProductionHistory(ssm)
    for label in ("r1", "r2", "r3"):
        _ran(history, label)
    ssm.delete_parameter(Name=f"{HISTORY}/00000002")
    with pytest.raises(RecordError, match="breaks the chain"):
        history.entries()


def test_an_entry_slipped_in_with_a_forged_digest_is_refused(ssm):
    history = ProductionHistory(ssm)
    first = _ran(history, "r1")
    forged = {**first.value(), "seq": 2, "digest": digest_of("never-promoted"), "prev": "0" * 64}
    ssm.put_parameter(Name=f"{HISTORY}/00000002", Value=json.dumps(forged), Type="String")
    with pytest.raises(RecordError, match="breaks the chain"):
        history.find(digest_of("never-promoted"))
