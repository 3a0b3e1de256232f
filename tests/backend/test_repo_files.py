"""Static checks of files that cannot run here: docker-compose.yml, the env templates, .gitignore."""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml
from dotenv import dotenv_values

from mv_os.db import connect_params
from tests.support.servers import ROOT

ENVS = ("local", "staging", "production")
SEED_URL = "postgresql://postgres:postgres@localhost:5432/mv_os?schema=public"


def test_compose_runs_postgres_16_as_the_seed_url_expects():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    pg = compose["services"]["postgres"]
    assert re.fullmatch(r"postgres:16(\.\d+)?(-\w+)?", pg["image"])
    seed = connect_params(SEED_URL)
    env = pg["environment"]
    assert (env["POSTGRES_USER"], env["POSTGRES_PASSWORD"], env["POSTGRES_DB"]) == (
        seed["user"],
        seed["password"],
        seed["dbname"],
    )
    assert f"127.0.0.1:{seed['port']}:5432" in pg["ports"]
    assert "pg_isready" in " ".join(pg["healthcheck"]["test"])
    volume = pg["volumes"][0].split(":")[0]
    assert volume in compose["volumes"], "data must live in a named volume"


def test_six_templates_exist():
    for side in ("backend", "frontend"):
        for env in ENVS:
            assert (ROOT / f"env/{side}.env.{env}.example").is_file()


@pytest.mark.parametrize("path", sorted((ROOT / "env").glob("*.example")), ids=lambda p: p.name)
def test_every_template_variable_is_documented(path):
    lines = path.read_text().splitlines()
    is_var = re.compile(r"^[A-Z][A-Z0-9_]*=")
    for i, line in enumerate(lines):
        if is_var.match(line):
            # A comment directly above the variable, or above the group of variables it belongs to.
            j = i - 1
            while j >= 0 and is_var.match(lines[j]):
                j -= 1
            assert j >= 0 and lines[j].startswith("#"), f"{path.name}: {line.split('=')[0]} is undocumented"


@pytest.mark.parametrize(
    ("env", "prefix", "other"),
    [
        ("staging", "mv-os/staging/", "mv-os/"),
        ("production", "mv-os/", "mv-os/staging/"),
    ],
)
def test_cloud_templates_hold_placeholders_naming_their_own_secrets(env, prefix, other):
    text = (ROOT / f"env/backend.env.{env}.example").read_text()
    values = dotenv_values(ROOT / f"env/backend.env.{env}.example")
    for var in (
        "DATABASE_URL",
        "JWT_SECRET",
        "WHATSAPP_APP_SECRET",
        "WHATSAPP_VERIFY_TOKEN",
        "WHATSAPP_ACCESS_TOKEN",
    ):
        assert values[var].startswith("<from Secrets Manager: ")
        assert f"{prefix}" in values[var]
    names = set(re.findall(r"mv-os/[a-z0-9/-]+", text))
    assert f"{prefix}database-url" in names
    assert f"{prefix}jwt-secret" in names
    if env == "production":
        assert not [n for n in names if n.startswith("mv-os/staging/")]
    else:
        assert all(n.startswith("mv-os/staging/") for n in names)
    assert values["NODE_ENV"] == env


def test_real_env_files_are_git_ignored():
    paths = ["env/backend.env.local", "env/backend.env.staging", ".env", "env/frontend.env.production"]
    result = subprocess.run(["git", "check-ignore", *paths], cwd=ROOT, capture_output=True, text=True)
    assert sorted(result.stdout.split()) == sorted(paths)
    kept = subprocess.run(["git", "check-ignore", "env/backend.env.local.example"], cwd=ROOT)
    assert kept.returncode == 1, "templates must stay tracked"
    assert subprocess.run(["git", "check-ignore", ".mv-os/pgdata"], cwd=ROOT).returncode == 0
