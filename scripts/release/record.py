"""The release records, in SSM Parameter Store under /mv-os/release/ (docs/decisions/0026-release-records-in-ssm.md).

- `/mv-os/release/staging-validated/<tree>`: the digest staging ran and smoke-tested for a git TREE
  (`git rev-parse HEAD^{tree}`), written once by the separate recorder role (`nox -s record`).  Keyed on the tree, so
  merging develop into main (a new commit, the same tree) keeps the record; a commit made on main has none.
- `/mv-os/release/production-history/<8-digit sequence>`: one entry per digest production ran and smoke-tested
  (deploy or rollback), with its tree, commit, run and the exact image configuration it ran with.  Each entry names
  the SHA-256 of the one before, so removing or reordering an entry breaks the chain.

Both are write-once: `PutParameter` without `Overwrite` fails on an existing name, the IAM policies deny
`ssm:Overwrite=true` and every delete, and a read refuses a parameter whose version is not 1 (someone with more
rights rewrote it).  Any record that does not verify fails closed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from scripts.release.images import DIGEST

PREFIX = "/mv-os/release"
VALIDATED = f"{PREFIX}/staging-validated"
HISTORY = f"{PREFIX}/production-history"


class RecordError(Exception):
    """A record is missing where one is required, was tampered with, or cannot be written."""


def _code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def _get(ssm, name: str) -> dict[str, Any] | None:
    try:
        param = ssm.get_parameter(Name=name)["Parameter"]
    except ClientError as exc:
        if _code(exc) == "ParameterNotFound":
            return None
        raise
    if int(param.get("Version", 1)) != 1:
        raise RecordError(f"{name} was overwritten (version {param['Version']}): release records are write-once")
    return json.loads(param["Value"])


def _put_once(ssm, name: str, value: dict[str, Any]) -> bool:
    """Create `name`; False if it already exists (never overwrites)."""
    try:
        ssm.put_parameter(Name=name, Value=json.dumps(value, sort_keys=True), Type="String", Overwrite=False)
    except ClientError as exc:
        if _code(exc) == "ParameterAlreadyExists":
            return False
        raise
    return True


@dataclass(frozen=True)
class Validated:
    tree: str
    digest: str
    git_sha: str
    run: str


class StagingRecord:
    """`staging-validated/<tree>` -> the digest staging ran and smoke-tested."""

    def __init__(self, ssm):
        self.ssm = ssm

    def read(self, tree: str) -> Validated | None:
        value = _get(self.ssm, f"{VALIDATED}/{tree}")
        if value is None:
            return None
        if value.get("tree") != tree or not DIGEST.fullmatch(str(value.get("digest", ""))):
            raise RecordError(f"{VALIDATED}/{tree} does not name a digest for this tree")
        return Validated(tree, value["digest"], value.get("git_sha", "unknown"), value.get("run", "unknown"))

    def write(self, tree: str, digest: str, git_sha: str, run: str) -> Validated:
        """Create the record; the same digest again is fine (a re-run), another digest never replaces it."""
        if not DIGEST.fullmatch(digest):
            raise RecordError(f"{digest!r} is not a sha256 digest")
        entry = {"tree": tree, "digest": digest, "git_sha": git_sha, "run": run}
        if _put_once(self.ssm, f"{VALIDATED}/{tree}", entry):
            return Validated(tree, digest, git_sha, run)
        existing = self.read(tree)
        if existing is None or existing.digest != digest:
            raise RecordError(
                f"tree {tree} is already recorded as validated with {existing.digest if existing else '?'}; a "
                "record never moves. Production will deploy that digest; `nox -s deploy -- staging` deploys it "
                "again instead of a rebuild."
            )
        return existing


@dataclass(frozen=True)
class Ran:
    """One production history entry."""

    seq: int
    digest: str
    image: str
    tree: str
    git_sha: str
    run: str
    kind: str  # deploy | rollback | redeploy
    at: str
    configuration: dict[str, Any]
    prev: str

    def value(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.value(), sort_keys=True).encode()).hexdigest()


class ProductionHistory:
    """Append-only, hash-chained list of what production ran (oldest first)."""

    def __init__(self, ssm):
        self.ssm = ssm

    def entries(self) -> list[Ran]:
        params: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"Path": HISTORY, "Recursive": False, "MaxResults": 10}
        while True:
            page = self.ssm.get_parameters_by_path(**kwargs)
            params.extend(page.get("Parameters", []))
            if not page.get("NextToken"):
                break
            kwargs["NextToken"] = page["NextToken"]
        entries: list[Ran] = []
        for param in sorted(params, key=lambda p: p["Name"]):
            if int(param.get("Version", 1)) != 1:
                raise RecordError(f"{param['Name']} was overwritten: the production history was tampered with")
            try:
                entry = Ran(**json.loads(param["Value"]))
            except (TypeError, ValueError) as exc:
                raise RecordError(f"{param['Name']} is not a history entry ({exc})") from None
            expected_prev = entries[-1].fingerprint() if entries else ""
            if entry.seq != len(entries) + 1 or param["Name"] != _name(entry.seq) or entry.prev != expected_prev:
                raise RecordError(f"{param['Name']} breaks the chain: the production history was tampered with")
            entries.append(entry)
        return entries

    def append(self, **fields: Any) -> Ran:
        """Add an entry after the last one; a concurrent writer that got there first makes this fail loudly."""
        entries = self.entries()
        seq = len(entries) + 1
        entry = Ran(seq=seq, prev=entries[-1].fingerprint() if entries else "", **fields)
        if not _put_once(self.ssm, _name(seq), entry.value()):
            raise RecordError(f"{_name(seq)} was written by someone else meanwhile; run again")
        return entry

    def latest(self) -> Ran | None:
        entries = self.entries()
        return entries[-1] if entries else None

    def find(self, digest: str) -> Ran | None:
        """The newest entry that ran `digest`."""
        return next((e for e in reversed(self.entries()) if e.digest == digest), None)

    def previous(self) -> Ran | None:
        """The newest entry whose digest differs from the latest's: what a plain rollback goes back to."""
        entries = self.entries()
        if not entries:
            return None
        return next((e for e in reversed(entries) if e.digest != entries[-1].digest), None)


def _name(seq: int) -> str:
    return f"{HISTORY}/{seq:08d}"
