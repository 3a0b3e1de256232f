"""env/environments.toml: the one definition of the environments (no secrets), and its agreement with the
env templates."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from scripts.release.environments import DefinitionError, deployable, for_branch, load

ROOT = Path(__file__).resolve().parents[2]


def test_the_seed_names():
    envs = load()
    assert envs["staging"].service == "mv-os-backend-staging"
    assert envs["production"].service == "mv-os-backend"
    assert envs["staging"].rds_identifier == "mv-os-db-staging"
    assert envs["production"].rds_identifier == "mv-os-db"
    assert envs["staging"].secrets["DATABASE_URL"] == "mv-os/staging/database-url"
    assert envs["production"].secrets["DATABASE_URL"] == "mv-os/database-url"
    assert envs["staging"].secrets["JWT_SECRET"] == "mv-os/staging/jwt-secret"
    assert envs["production"].secrets["JWT_SECRET"] == "mv-os/jwt-secret"
    assert for_branch("develop").name == "staging"
    assert for_branch("main").name == "production"
    assert for_branch("feature/x") is None


def test_local_is_declared_and_never_deployable():
    assert load()["local"].deployable is False
    with pytest.raises(DefinitionError, match="never for feature iteration, UI testing or debugging"):
        deployable("local")


def test_every_secret_lives_in_its_own_namespace():
    envs = load()
    assert all(n.startswith("mv-os/staging/") for n in envs["staging"].secrets.values())
    assert all(
        n.startswith("mv-os/") and not n.startswith("mv-os/staging/") for n in envs["production"].secrets.values()
    )
    # The same secrets, but for staging's smoke user: production has none, and its app refuses the variable.
    assert envs["staging"].secrets.keys() - {"SMOKE_USER_PASSWORD"} == envs["production"].secrets.keys()
    assert "SMOKE_USER_PASSWORD" in envs["staging"].secrets and "SMOKE_USER_EMAIL" in envs["staging"].variables
    assert "SMOKE_USER_EMAIL" not in envs["production"].variables


def test_a_crossed_secret_name_is_refused_when_loading(tmp_path):
    text = (ROOT / "env" / "environments.toml").read_text()
    crossed = text.replace('JWT_SECRET = "mv-os/staging/jwt-secret"', 'JWT_SECRET = "mv-os/jwt-secret"')
    (tmp_path / "e.toml").write_text(crossed)
    with pytest.raises(DefinitionError, match=r"staging.secrets.JWT_SECRET = 'mv-os/jwt-secret' is outside"):
        load(tmp_path / "e.toml")
    crossed = text.replace('JWT_SECRET = "mv-os/jwt-secret"', 'JWT_SECRET = "mv-os/staging/jwt-secret"')
    (tmp_path / "e.toml").write_text(crossed)
    with pytest.raises(DefinitionError, match="inside mv-os/staging/"):
        load(tmp_path / "e.toml")


def test_a_wrong_node_env_is_refused_when_loading(tmp_path):
    text = (ROOT / "env" / "environments.toml").read_text()
    (tmp_path / "e.toml").write_text(text.replace('node_env = "staging"', 'node_env = "production"'))
    with pytest.raises(DefinitionError, match="must set node_env = 'staging'"):
        load(tmp_path / "e.toml")


@pytest.mark.parametrize("env_name", ["staging", "production"])
def test_templates_and_definition_agree(env_name):
    """Every `<from Secrets Manager: NAME>` line of env/backend.env.<env>.example is in the definition, and the
    other way round: adding a secret means editing both (docs/release.md, "Add a variable")."""
    template = (ROOT / "env" / f"backend.env.{env_name}.example").read_text()
    in_template = dict(re.findall(r"^([A-Z_]+)=<from Secrets Manager: ([^>]+)>$", template, re.M))
    assert in_template == load()[env_name].secrets
    plain = set(re.findall(r"^([A-Z_]+)=", template, re.M)) - set(in_template)
    assert set(load()[env_name].variables) <= plain


def test_the_definition_holds_no_secret_values():
    text = (ROOT / "env" / "environments.toml").read_text()
    for line in text.splitlines():
        # A PASSWORD line may only name a secret (mv-os/...), never hold a value.
        assert not re.search(r'(?i)postgres(ql)?://|password\s*=(?!\s*"mv-os/)|://[^/]*:[^@/]*@', line), line
