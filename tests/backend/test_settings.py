"""NODE_ENV selection and start-up validation: one line that names the variable, never its value."""

from __future__ import annotations

import logging
import secrets
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from dotenv import dotenv_values

from mv_os import create_app
from mv_os.settings import ConfigError, Environment, Settings, is_placeholder
from tests.support.servers import ROOT, backend_env

# pragma: allowlist nextline secret (test value)
STAGING_DB = "postgresql://mvos:s3cr3t-pw@mv-os-db-staging.abc123.eu-west-1.rds.amazonaws.com:5432/mv_os"
# pragma: allowlist nextline secret (test value)
PROD_DB = "postgresql://mvos:s3cr3t-pw@mv-os-db.abc123.eu-west-1.rds.amazonaws.com:5432/mv_os"
USER_PW = "u:s3cr3t-pw"  # pragma: allowlist secret (test value; never in an error line)
# Made per run: staging and production refuse any credential value committed to the repository.
REAL_JWT = secrets.token_urlsafe(32)


def cloud_env(env: str = "staging", **overrides: str) -> dict[str, str]:
    base = {
        "NODE_ENV": env,
        "DATABASE_URL": STAGING_DB if env == "staging" else PROD_DB,
        "JWT_SECRET": REAL_JWT,
        "WHATSAPP_APP_SECRET": secrets.token_hex(16),
        "WHATSAPP_VERIFY_TOKEN": secrets.token_urlsafe(16),
        "WHATSAPP_ACCESS_TOKEN": "EAAG" + secrets.token_urlsafe(24),
        "WHATSAPP_PHONE_NUMBER_ID": "106540352242922",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def config_error(environ: dict[str, str]) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        Settings.from_env(environ)
    return info.value


@pytest.mark.unit
def test_unset_node_env_is_local_with_mocks():
    settings = Settings.from_env({"DATABASE_URL": "postgresql://postgres@localhost/mv_os"})
    assert settings.environment is Environment.LOCAL
    assert settings.jwt_audience == "mv-os-local"


@pytest.mark.unit
@pytest.mark.parametrize("value", ["prod", "Production", "dev", "stagging", "test"])
def test_node_env_typo_is_refused_naming_variable_and_allowed_values(value):
    err = config_error({"NODE_ENV": value, "DATABASE_URL": "postgresql://localhost/mv_os"})
    assert err.variable == "NODE_ENV"
    assert "local, staging, production" in str(err)


@pytest.mark.unit
@pytest.mark.parametrize("env", ["staging", "production"])
def test_valid_cloud_settings_load(env):
    settings = Settings.from_env(cloud_env(env))
    assert settings.environment.value == env
    assert settings.jwt_audience == f"mv-os-{env}"


@pytest.mark.unit
@pytest.mark.parametrize("env", ["staging", "production"])
@pytest.mark.parametrize(
    "variable",
    [
        "DATABASE_URL",
        "JWT_SECRET",
        "WHATSAPP_APP_SECRET",
        "WHATSAPP_VERIFY_TOKEN",
        "WHATSAPP_ACCESS_TOKEN",
        "WHATSAPP_PHONE_NUMBER_ID",
    ],
)
def test_cloud_requires_each_secret(env, variable):
    err = config_error(cloud_env(env, **{variable: None}))
    assert err.variable == variable
    assert "required" in str(err)


@pytest.mark.unit
def test_short_jwt_secret_is_refused_without_printing_it():
    err = config_error(cloud_env("production", JWT_SECRET="tooShortButRandom-7f3a"))
    assert err.variable == "JWT_SECRET"
    assert "32 bytes" in str(err)
    assert "tooShortButRandom" not in str(err)


@pytest.mark.unit
@pytest.mark.parametrize(
    "value",
    [
        "<from Secrets Manager: mv-os/jwt-secret>",
        "change-me-change-me-change-me-change-me",
        "REPLACE_ME_WITH_A_LONG_RANDOM_SECRET_VALUE",
        "${JWT_SECRET_FROM_VAULT_AT_DEPLOY_TIME_XXXX}",
    ],
)
def test_placeholder_jwt_secret_is_refused(value):
    err = config_error(cloud_env("production", JWT_SECRET=value))
    assert err.variable == "JWT_SECRET"
    assert "placeholder" in str(err)


@pytest.mark.unit
@pytest.mark.parametrize("env", ["staging", "production"])
def test_the_committed_templates_never_start_a_cloud_environment(env):
    values = {k: v for k, v in dotenv_values(ROOT / f"env/backend.env.{env}.example").items() if v}
    err = config_error(values)
    assert err.variable in {"DATABASE_URL", "JWT_SECRET"}
    assert "placeholder" in str(err)


@pytest.mark.unit
@pytest.mark.parametrize(
    ("env", "url", "needle"),
    [
        ("staging", PROD_DB, "production database"),
        ("staging", "postgresql://u:p@db.internal:5432/mv-os-db", "production database"),
        ("production", STAGING_DB, "staging database"),
        ("production", "postgresql://u:p@localhost:5432/mv_os", "localhost"),
        ("production", "postgresql://u:p@127.0.0.1:5432/mv_os", "localhost"),
        ("staging", PROD_DB.replace("mv-os-db", "MV-OS-DB"), "production database"),
        ("production", STAGING_DB.replace("mv-os-db-staging", "MV-OS-DB-STAGING"), "staging database"),
        ("production", "postgresql://u:p@rds.example.com/mv_os?host=mv-os-db-staging.x.rds.example", "staging"),
        (
            "production",
            f"postgresql://u:p@rds.example.com:5432,{STAGING_DB.split('@')[1].split('/')[0]}/mv_os",
            "staging",
        ),
        ("production", "host=Mv-Os-Db-Staging.x.rds.example dbname=mv_os user=u password=s3cr3t-pw", "staging"),
        ("local", "host=rds.example.com dbname=MV-OS-DB user=u password=s3cr3t-pw", "cloud database"),
    ]
    + [
        ("production", f"postgresql://{USER_PW}@{host}:5432/mv_os", "this machine")
        for host in (
            "127.0.0.2",
            "LOCALHOST",
            "localhost.",
            "app.localhost",
            "[::1]",
            "[::ffff:127.0.0.2]",
            "169.254.169.254",
            "[fe80::1]",
            "0.0.0.0",
            "127.1",
            "2130706433",
            "%2Ftmp%2Fpg",
        )
    ]
    + [
        ("production", f"postgresql://{USER_PW}@rds.example.com/mv_os?hostaddr=127.0.0.1", "this machine"),
        ("production", f"postgresql://{USER_PW}@rds.example.com,localhost/mv_os", "this machine"),
        ("production", "postgresql:///mv_os?host=/var/run/postgresql&password=s3cr3t-pw", "this machine"),
        ("production", "host=127.0.0.3 dbname=mv_os password=s3cr3t-pw", "this machine"),
        ("local", PROD_DB, "cloud database"),
        ("local", STAGING_DB, "cloud database"),
    ],
)
def test_cross_environment_database_guard(env, url, needle):
    environ = cloud_env(env, DATABASE_URL=url) if env != "local" else {"NODE_ENV": "local", "DATABASE_URL": url}
    err = config_error(environ)
    assert err.variable == "DATABASE_URL"
    assert needle in str(err)
    assert "s3cr3t-pw" not in str(err)


@pytest.mark.unit
@pytest.mark.parametrize("env", ["staging", "production"])
def test_no_secret_of_the_local_template_starts_a_cloud_environment(env):
    """Each of the local template's secrets (and the demo password), in any credential variable, is refused with
    a line that names the variable and not the value."""
    local = dotenv_values(ROOT / "env/backend.env.local.example")
    values = [local[name] for name in ("JWT_SECRET", "WHATSAPP_APP_SECRET", "WHATSAPP_VERIFY_TOKEN", "DEMO_PASSWORD")]
    for variable in ("JWT_SECRET", "WHATSAPP_APP_SECRET", "WHATSAPP_VERIFY_TOKEN", "WHATSAPP_ACCESS_TOKEN"):
        for value in values:
            err = config_error(cloud_env(env, **{variable: value}))
            assert err.variable == variable
            assert value not in str(err)
    assert "committed" in str(config_error(cloud_env(env, JWT_SECRET=local["JWT_SECRET"])))


@pytest.mark.unit
@pytest.mark.parametrize(
    ("variable", "value", "needle"),
    [
        ("WHATSAPP_APP_SECRET", "x", "16 bytes"),
        ("WHATSAPP_APP_SECRET", "0123456789abcde", "16 bytes"),
        ("WHATSAPP_VERIFY_TOKEN", "short-token", "16 bytes"),
        ("WHATSAPP_APP_SECRET", "a" * 40, "different characters"),
        ("WHATSAPP_VERIFY_TOKEN", "abababababababababab", "different characters"),
        ("JWT_SECRET", "0" * 64, "different characters"),
        ("JWT_SECRET", "local-development-jwt-secret-not-for-cloud-use", "committed to the repository"),
        ("WHATSAPP_APP_SECRET", "local-app-secret", "committed to the repository"),
        ("WHATSAPP_VERIFY_TOKEN", "local-verify-token", "committed to the repository"),
    ],
)
@pytest.mark.parametrize("env", ["staging", "production"])
def test_weak_or_committed_secrets_are_refused_by_name(env, variable, value, needle):
    err = config_error(cloud_env(env, **{variable: value}))
    assert err.variable == variable
    assert needle in str(err)
    assert value not in str(err)


@pytest.mark.unit
def test_the_shipped_fingerprints_are_those_of_the_committed_values():
    """committed.py is regenerated from the tracked files: a newly committed secret cannot be missing from it."""
    result = subprocess.run(
        [sys.executable, "-m", "scripts.committed_values", "check"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.unit
def test_staging_accepts_its_own_database():
    assert Settings.from_env(cloud_env("staging", DATABASE_URL=STAGING_DB)).database_url == STAGING_DB


def test_local_ignores_real_credentials_and_says_so_once(migrated_url, caplog):
    environ = {"DATABASE_URL": migrated_url, "WHATSAPP_ACCESS_TOKEN": "EAAGreal-token-value-123"}
    settings = Settings.from_env(environ)
    assert settings.whatsapp_access_token is None
    assert settings.ignored_credentials == ("WHATSAPP_ACCESS_TOKEN",)
    logging.getLogger("mv_os").addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.WARNING, logger="mv_os"):
            create_app(settings)
    finally:
        logging.getLogger("mv_os").removeHandler(caplog.handler)
    warnings = [r.getMessage() for r in caplog.records if "ignoring" in r.getMessage()]
    assert len(warnings) == 1
    assert "WHATSAPP_ACCESS_TOKEN" in warnings[0]
    assert "EAAGreal-token-value-123" not in warnings[0]


@pytest.mark.unit
def test_password_hash_method_defaults_to_werkzeugs_scrypt():
    local = Settings.from_env({"DATABASE_URL": "postgresql://localhost/mv_os"})
    for settings in (local, Settings.from_env(cloud_env("production"))):
        assert settings.password_hash_method == "scrypt"  # pragma: allowlist secret (werkzeug's default method)


@pytest.mark.unit
@pytest.mark.parametrize("value", ["scrypt:1024:8:1", "scrypt:4096:8:2", "scrypt"])
def test_local_accepts_cheaper_scrypt_parameters(value):
    environ = {"DATABASE_URL": "postgresql://localhost/mv_os", "PASSWORD_HASH_METHOD": value}
    assert Settings.from_env(environ).password_hash_method == value


@pytest.mark.unit
@pytest.mark.parametrize("env", ["staging", "production"])
@pytest.mark.parametrize("value", ["scrypt:1024:8:1", "scrypt"])
def test_staging_and_production_refuse_password_hash_method(env, value):
    """Only werkzeug's default scrypt parameters in the cloud: the variable stops start-up, whatever it says."""
    err = config_error(cloud_env(env, PASSWORD_HASH_METHOD=value))
    assert err.variable == "PASSWORD_HASH_METHOD"
    assert str(err).count("\n") == 0
    assert "1024" not in str(err)


@pytest.mark.unit
@pytest.mark.parametrize(
    "value", ["pbkdf2:sha256", "plain", "scrypt:1000:8:1", "scrypt:512:8:1", "scrypt:65536:8:1", "scrypt:1024:0:1"]
)
def test_local_refuses_unusable_password_hash_methods(value):
    err = config_error({"DATABASE_URL": "postgresql://localhost/mv_os", "PASSWORD_HASH_METHOD": value})
    assert err.variable == "PASSWORD_HASH_METHOD"


@pytest.mark.unit
def test_placeholder_detector_leaves_real_values_alone():
    assert not is_placeholder(REAL_JWT)
    assert not is_placeholder(STAGING_DB)
    assert is_placeholder("<staging phone number id>")


def _run(cmd: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("overrides", "variable"),
    [
        ({"NODE_ENV": "prod"}, "NODE_ENV"),
        # pragma: allowlist nextline secret (test value)
        ({"NODE_ENV": "production", "JWT_SECRET": "short-secret-value-xyz"}, "JWT_SECRET"),
    ],
)
def test_entry_points_exit_with_one_line_naming_the_variable(migrated_url, overrides, variable):
    env = backend_env(migrated_url)
    env.update(cloud_env("production") if overrides.get("NODE_ENV") == "production" else {})
    env.update(overrides)
    commands = [
        [sys.executable, "-m", "flask", "--app", "mv_os", "migrate"],
        [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), "mv_os:create_app()"],
    ]
    with ThreadPoolExecutor(len(commands)) as pool:  # both at once: each is a Python start-up
        results = list(pool.map(lambda cmd: _run(cmd, env), commands))
    for cmd, result in zip(commands, results, strict=True):
        assert result.returncode != 0, cmd
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, (cmd, result.stderr)
        assert lines[0].startswith(f"mv-os: config error: {variable} "), lines[0]
        for secret in ("short-secret-value-xyz", REAL_JWT, "s3cr3t-pw"):
            assert secret not in result.stderr + result.stdout


@pytest.mark.unit
def test_repo_root_layout_matches_the_seed():
    for name in ("backend", "frontend", "env", "scripts", "noxfile.py", "docker-compose.yml", "README.md"):
        assert (ROOT / name).exists(), name
    assert Path(ROOT / ".gitignore").read_text().count(".env") >= 1
