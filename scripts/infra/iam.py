"""infra/iam/*.json, rendered from the roles in infra/cloudformation/shared.yaml (the one source).

Each role `mv-os-<name>` becomes `<name>.trust.json` and `<name>.policy.json`, with the account as ACCOUNT_ID and
the repository as GITHUB_OWNER/mv-os, so tests/release/test_iam.py and people read what CloudFormation applies.
`nox -s infra -- iam` rewrites them; `nox -s infra -- iam --check` (and a test) fails when they differ."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from scripts.infra import parameters
from scripts.infra.template import ROOT, TEMPLATES, evaluate, load
from scripts.release.environments import DEFAULT_PATH
from scripts.release.environments import load as load_environments

IAM = ROOT / "infra" / "iam"
ACCOUNT, REPOSITORY = "ACCOUNT_ID", "GITHUB_OWNER/mv-os"
KEEP = {"README.md"}


def names(path: Path | str = DEFAULT_PATH) -> dict[str, str]:
    """What each ${...} in the shared template stands for in the rendered documents."""
    envs = load_environments(path)
    regions = {e.region for e in envs.values() if e.deployable}
    if len(regions) != 1:
        raise parameters.ParameterError(f"the shared stack serves one region; environments.toml has {sorted(regions)}")
    return {
        **parameters.shared(REPOSITORY, path),
        "AWS::AccountId": ACCOUNT,
        "AWS::Region": regions.pop(),
        "AWS::Partition": "aws",
    }


def documents(path: Path | str = DEFAULT_PATH) -> dict[str, dict[str, Any]]:
    """file name -> document, for every role of the shared stack."""
    template = load(TEMPLATES / "shared.yaml")
    values = names(path)
    out: dict[str, dict[str, Any]] = {}
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] != "AWS::IAM::Role":
            continue
        props = resource["Properties"]
        base = props["RoleName"].removeprefix("mv-os-")
        policies = props.get("Policies", [])
        if len(policies) > 1:
            raise ValueError(f"{logical_id}: at most one inline policy per role, found {len(policies)}")
        out[f"{base}.trust.json"] = evaluate(props["AssumeRolePolicyDocument"], values)
        # A role without an inline policy (an AWS managed one, or none at all) has only its trust document.
        if policies:
            out[f"{base}.policy.json"] = evaluate(policies[0]["PolicyDocument"], values)
    return out


def text(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2) + "\n"


def differences(directory: Path = IAM) -> list[str]:
    """What differs between the rendered documents and the files in `directory` ([] when they agree)."""
    wanted = documents()
    present = {p.name for p in directory.iterdir() if p.name not in KEEP}
    problems = [f"{n}: not rendered from shared.yaml (remove it)" for n in sorted(present - set(wanted))]
    for name, document in sorted(wanted.items()):
        path = directory / name
        if not path.is_file():
            problems.append(f"{name}: missing")
        elif path.read_text() != text(document):
            problems.append(f"{name}: differs from shared.yaml")
    return problems


def render(directory: Path = IAM) -> list[str]:
    """Write every document; remove files no role renders.  Returns the names written or removed."""
    wanted = documents()
    changed = []
    for path in sorted(directory.iterdir()):
        if path.name not in KEEP and path.name not in wanted:
            path.unlink()
            changed.append(f"removed {path.name}")
    for name, document in sorted(wanted.items()):
        path = directory / name
        if not path.is_file() or path.read_text() != text(document):
            path.write_text(text(document))
            changed.append(f"wrote {name}")
    return changed
