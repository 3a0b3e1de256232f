"""An offline plan for pull requests: what a branch changes in a stack's desired state, against a base commit.

A pull request's workflow runs the branch's own code, so it gets no AWS role; instead this compares the
templates and env/environments.toml at the base commit and at HEAD, resource by resource.  A resource holding
data is flagged REPLACE when a property CloudFormation can only change by replacement differs (the real change
set, planned on the deploy branch before apply, has the final word)."""

from __future__ import annotations

import contextlib
import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml

from scripts.infra import parameters
from scripts.infra.changeset import Change, Plan
from scripts.infra.template import ROOT, Target, Unsupported, conditions, evaluate, select
from scripts.release.environments import DEFAULT_PATH, DefinitionError, load

# Properties whose change makes CloudFormation replace the resource ("Update requires: Replacement").
REPLACED_BY = {
    "AWS::RDS::DBInstance": {"DBInstanceIdentifier", "Engine", "DBName", "MasterUsername", "StorageEncrypted"},
    "AWS::ECR::Repository": {"RepositoryName", "EncryptionConfiguration"},
    "AWS::SecretsManager::Secret": {"Name"},
    "AWS::Logs::LogGroup": {"LogGroupName"},
}
# A stand-in for the running image: the same on both sides, so it never shows as a change.
STAND_IN_IMAGE = "000000000000.dkr.ecr.us-east-1.amazonaws.com/{repository}@sha256:" + "0" * 64


def _git_show(base: str, path: Path) -> str | None:
    rel = path.relative_to(ROOT).as_posix()
    found = subprocess.run(
        ["git", "show", f"{base}:{rel}"], cwd=ROOT, capture_output=True, text=True, check=False, timeout=60
    )
    return found.stdout if found.returncode == 0 else None


def _params(target: Target, toml: Path) -> dict[str, str]:
    if target.name == "shared":
        return parameters.shared("GITHUB_OWNER/mv-os", toml)
    env = load(toml)[target.name]
    return parameters.environment(env, None, STAND_IN_IMAGE.format(repository=env.ecr_repository), toml)


def _resolved(definition: dict[str, Any], params: dict[str, str], on: dict[str, bool]) -> dict[str, Any]:
    """The definition with every parameter filled in and every Fn::If decided (resource attributes stay as
    written)."""
    with contextlib.suppress(Unsupported):  # a base from before a condition: compared as written
        definition = select(definition, on)

    def walk(value: Any) -> Any:
        try:
            return evaluate(value, params)
        except Unsupported:
            if isinstance(value, dict):
                return {k: walk(v) for k, v in value.items()}
            if isinstance(value, list):
                return [walk(v) for v in value]
            return value

    return walk(definition)


def desired(template_text: str | None, params: dict[str, str]) -> dict[str, dict[str, Any]]:
    if template_text is None:
        return {}
    template = yaml.safe_load(template_text)
    defaults = {k: str(v["Default"]) for k, v in template.get("Parameters", {}).items() if "Default" in v}
    names = {**defaults, **params, "AWS::AccountId": "ACCOUNT_ID", "AWS::Region": "REGION", "AWS::StackName": "STACK"}
    try:
        on = conditions(template, names)
    except Unsupported:
        on = {}  # a base from before a parameter: every resource counts, as written
    return {
        logical_id: _resolved(r, names, on)
        for logical_id, r in template.get("Resources", {}).items()
        if on.get(r.get("Condition", ""), True)
    }


def compare(before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]]) -> list[Change]:
    changes = []
    for logical_id in sorted(set(before) | set(after), key=lambda k: (k not in after, k)):
        old, new = before.get(logical_id), after.get(logical_id)
        if old is None:
            changes.append(Change("create", logical_id, new["Type"]))
        elif new is None:
            changes.append(Change("delete", logical_id, old["Type"]))
        elif json.dumps(old, sort_keys=True) != json.dumps(new, sort_keys=True):
            props_old, props_new = old.get("Properties", {}), new.get("Properties", {})
            replaced = any(props_old.get(p) != props_new.get(p) for p in REPLACED_BY.get(new["Type"], ()))
            changes.append(Change("replace" if replaced else "change", logical_id, new["Type"]))
    return changes


def offline(target: Target, base: str) -> Plan:
    """The resources HEAD's templates and environments.toml change, against commit `base`."""
    base_toml = _git_show(base, DEFAULT_PATH)
    base_text = _git_show(base, target.template)
    with tempfile.TemporaryDirectory() as tmp:
        toml = Path(tmp) / "environments.toml"
        toml.write_text(base_toml or "")
        try:
            before = desired(base_text, _params(target, toml)) if base_toml else {}
        except (parameters.ParameterError, DefinitionError, KeyError, ValueError):
            before = desired(base_text, {})  # the base predates a parameter: compare the definitions as written
    after = desired(target.body(), _params(target, DEFAULT_PATH))
    return Plan(target.stack, "", f"none: offline diff against {base}", "UPDATE", tuple(compare(before, after)), {})
