"""The CloudFormation templates in infra/cloudformation: which stack each target is, reading them, and
evaluating the few intrinsic functions their IAM documents use."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "infra" / "cloudformation"


@dataclass(frozen=True)
class Target:
    """One stack: `shared` (IAM, OIDC, ECR; applied by an administrator) or one environment."""

    name: str
    stack: str
    template: Path

    def body(self) -> str:
        """The template as CloudFormation receives it: compact JSON.  The committed YAML, with its comments and
        indentation, is about a third larger, and CreateChangeSet takes at most 51,200 bytes."""
        return json.dumps(load(self.template), separators=(",", ":"))


def target(name: str) -> Target:
    if name == "shared":
        return Target("shared", "mv-os-shared", TEMPLATES / "shared.yaml")
    return Target(name, f"mv-os-{name}", TEMPLATES / "environment.yaml")


def load(path: Path) -> dict[str, Any]:
    """A template as data.  The templates use the long forms ({"Fn::Sub": ...}), so they are plain YAML that
    every YAML tool reads (scripts/check_config_files.py, pre-commit)."""
    return yaml.safe_load(path.read_text())


_SUB = re.compile(r"\$\{([^}!]+)\}")


class Unsupported(ValueError):
    """An intrinsic function the evaluator does not know (the IAM documents should not need it)."""


_NO_VALUE = object()


def select(value: Any, on: dict[str, bool]) -> Any:
    """Resolve Fn::If with the template's conditions (`on`, from `conditions()`); an AWS::NoValue branch drops
    the list item or key it stood for.  Everything else stays as written."""
    if isinstance(value, list):
        return [v for v in (select(item, on) for item in value) if v is not _NO_VALUE]
    if not isinstance(value, dict):
        return value
    if value == {"Ref": "AWS::NoValue"}:
        return _NO_VALUE
    if set(value) == {"Fn::If"}:
        name, yes, no = value["Fn::If"]
        if name not in on:
            raise Unsupported(f"Fn::If on an unknown condition {name}")
        return select(yes if on[name] else no, on)
    chosen = {k: select(v, on) for k, v in value.items()}
    return {k: v for k, v in chosen.items() if v is not _NO_VALUE}


def evaluate(value: Any, names: dict[str, str], on: dict[str, bool] | None = None) -> Any:
    """Resolve Ref and Fn::Sub against `names` (parameters and pseudo parameters), and Fn::If when the
    conditions are given; anything else is an error."""
    if on is not None:
        value = select(value, on)
    if isinstance(value, list):
        return [evaluate(v, names) for v in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"Ref"}:
        return _lookup(value["Ref"], names)
    if set(value) == {"Fn::Sub"}:
        text = value["Fn::Sub"]
        if not isinstance(text, str):
            raise Unsupported("Fn::Sub with a variable map")
        return _SUB.sub(lambda m: _lookup(m.group(1), names), text)
    if any(k == "Ref" or k.startswith("Fn::") for k in value):
        raise Unsupported(", ".join(value))
    return {k: evaluate(v, names) for k, v in value.items()}


def _lookup(name: str, names: dict[str, str]) -> str:
    if name not in names:
        raise Unsupported(f"reference to {name} (a resource attribute or an unknown parameter)")
    return names[name]


def conditions(template: dict[str, Any], names: dict[str, str]) -> dict[str, bool]:
    """The template's conditions: Fn::Equals of parameters and literals, and Fn::Or and Fn::Not of those (the
    forms the templates use)."""

    def holds(condition: Any) -> bool:
        if isinstance(condition, dict) and set(condition) == {"Fn::Equals"}:
            left, right = evaluate(condition["Fn::Equals"], names)
            return left == right
        if isinstance(condition, dict) and set(condition) == {"Fn::Or"}:
            return any(holds(c) for c in condition["Fn::Or"])
        if isinstance(condition, dict) and set(condition) == {"Fn::Not"}:
            return not holds(condition["Fn::Not"][0])
        raise Unsupported(f"condition {condition}")

    return {name: holds(condition) for name, condition in template.get("Conditions", {}).items()}
