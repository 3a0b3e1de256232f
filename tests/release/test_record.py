"""The staging-validated record (immutable ECR tag `staging-validated-<tree>`), on moto's ECR."""

from __future__ import annotations

import boto3
import pytest

from scripts.release.record import EcrRecord, RecordError
from tests.release.conftest import REGION, REPOSITORY, create_repository, digest_of, push_image

TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"


@pytest.fixture
def record(moto):
    create_repository("IMMUTABLE")
    return EcrRecord(boto3.client("ecr", region_name=REGION), REPOSITORY)


def test_write_then_read_names_the_same_digest(record):
    digest = push_image("build")
    assert record.read(TREE) is None
    assert record.write(TREE, digest) == f"staging-validated-{TREE}"
    assert record.read(TREE) == digest
    assert record.validated_tags(digest) == [f"staging-validated-{TREE}"]


def test_writing_the_same_record_again_is_fine(record):
    digest = push_image("build")
    record.write(TREE, digest)
    record.write(TREE, digest)  # a re-run of the same staging deploy
    assert record.read(TREE) == digest


def test_a_record_never_moves_to_another_digest(record):
    first, second = push_image("build-1"), push_image("build-2")
    record.write(TREE, first)
    with pytest.raises(RecordError, match="a record never moves"):
        record.write(TREE, second)
    assert record.read(TREE) == first


def test_an_unknown_digest_cannot_be_recorded(record):
    with pytest.raises(RecordError, match="is not in ECR repository"):
        record.write(TREE, digest_of("never pushed"))
    assert record.validated_tags(digest_of("never pushed")) == []


def test_repository_uri_and_mutability(record):
    assert record.repository_uri().endswith(f".amazonaws.com/{REPOSITORY}")
    assert record.tag_mutability() == "IMMUTABLE"
