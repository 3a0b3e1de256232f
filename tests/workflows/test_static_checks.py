"""The repository-specific parts of `nox -s lint`: env templates hold placeholders only, and every YAML/TOML
file parses.  (zizmor, the workflow schema, hadolint and detect-secrets are third-party tools that the lint
session runs; these tests cover the rules this repository adds.)"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from scripts import check_config_files, check_secrets

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = sorted((ROOT / "env").glob("*.example"))


def _tracked(*suffixes: str) -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [str(ROOT / f) for f in out.splitlines() if f.endswith(suffixes) and (ROOT / f).is_file()]


def test_the_committed_env_templates_hold_placeholders_only():
    assert len(TEMPLATES) == 6
    assert check_secrets.template_findings([str(p) for p in TEMPLATES]) == []


def _copy(tmp_path: Path, name: str, old: str, new: str) -> str:
    text = (ROOT / "env" / name).read_text()
    assert old in text
    (tmp_path / "env").mkdir(exist_ok=True)
    copy = tmp_path / "env" / name
    copy.write_text(text.replace(old, new, 1))
    return str(copy)


def test_a_real_looking_value_in_the_staging_template_is_caught(tmp_path):
    copy = _copy(
        tmp_path,
        "backend.env.staging.example",
        "JWT_SECRET=<from Secrets Manager: mv-os/staging/jwt-secret>",
        "JWT_SECRET=Zq8v2LxR7pT4wN1yK6mB3cH5jD0fG9sA",  # pragma: allowlist secret (the broken copy)
    )
    assert check_secrets.template_findings([copy]) == [
        f"{copy}:13: JWT_SECRET in an env template must be a <placeholder>"
    ]


def test_a_local_default_is_fine_only_in_the_local_template(tmp_path):
    local = _copy(
        tmp_path,
        "backend.env.local.example",
        "JWT_SECRET=local-development-jwt-secret-not-for-cloud-use",
        "JWT_SECRET=Zq8v2LxR7pT4wN1yK6mB3cH5jD0fG9sA",  # pragma: allowlist secret (the broken copy)
    )
    prod = _copy(
        tmp_path,
        "backend.env.production.example",
        "WHATSAPP_APP_SECRET=<from Secrets Manager: mv-os/whatsapp-app-secret>",
        "WHATSAPP_APP_SECRET=local-app-secret",
    )
    found = check_secrets.template_findings([local, prod])
    assert len(found) == 2
    assert "JWT_SECRET" in found[0] and "WHATSAPP_APP_SECRET" in found[1]


def test_every_yaml_and_toml_file_parses():
    files = _tracked(".yml", ".yaml", ".toml")
    assert any(f.endswith("ci.yml") for f in files) and any(f.endswith("pyproject.toml") for f in files)
    assert check_config_files.problems(files) == []


@pytest.mark.parametrize(
    ("name", "text"),
    [("broken.yml", "jobs:\n  a: [1, 2\n"), ("broken.toml", "[branches.main\nrequired = 1\n")],
)
def test_a_broken_yaml_or_toml_file_is_caught(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    assert check_config_files.problems([str(path)])[0].startswith(f"{path}: ")
