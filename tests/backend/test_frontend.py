"""The backend serves the static inbox at `/` and its public runtime config at `/config.json`.

The config is read at run time (the same image runs in staging and production) from an allow-list of
variables, and no backend credential can reach it, whatever someone names a variable or puts in it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from dotenv import dotenv_values

from mv_os import create_app
from mv_os.frontend import PUBLIC_VARIABLES, build_config, frontend_dir
from mv_os.settings import SECRET_VARIABLES, Environment, Settings

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = sorted((ROOT / "env").glob("frontend.env.*.example"))
CONFIG_KEYS = {"environment", "env_label", "api_base", "poll_interval_ms"}


@pytest.fixture
def clean_env(monkeypatch):
    for name in (*PUBLIC_VARIABLES, "FRONTEND_DIR"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _in(settings: Settings, environment: Environment) -> Settings:
    """Settings of another environment (deployed ones need a provider token to build the app)."""
    token = "test-access-token" if environment.deployed else None
    return settings.replace(environment=environment, whatsapp_access_token=token)


def _app(settings: Settings, monkeypatch, **env: str):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return create_app(settings)


def test_templates_list_exactly_the_public_variables():
    assert len(TEMPLATES) == 3
    for template in TEMPLATES:
        assert tuple(dotenv_values(template)) == PUBLIC_VARIABLES, template.name


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.name)
def test_each_template_is_served_as_written(template, settings, clean_env):
    environment = Environment(template.name.split(".")[2])
    values = dotenv_values(template)
    app = _app(_in(settings, environment), clean_env, **values)
    config = app.test_client().get("/config.json").get_json()
    assert config == {
        "environment": environment.value,
        "env_label": values["FRONTEND_ENV_LABEL"],
        "api_base": values["FRONTEND_API_BASE"],
        "poll_interval_ms": int(values["FRONTEND_POLL_INTERVAL_MS"]),
    }


@pytest.mark.parametrize(
    ("environment", "label", "poll"),
    [
        (Environment.LOCAL, "LOCAL", 3000),
        (Environment.STAGING, "STAGING", 5000),
        (Environment.PRODUCTION, "PRODUCTION", 5000),
    ],
)
def test_defaults_follow_node_env_when_no_variable_is_set(environment, label, poll, settings, clean_env):
    """The image carries no FRONTEND_* at all and still shows the right banner in each environment."""
    config = _app(_in(settings, environment), clean_env).test_client().get("/config.json")
    assert config.get_json() == {
        "environment": environment.value,
        "env_label": label,
        "api_base": "/api",
        "poll_interval_ms": poll,
    }
    assert config.headers["Cache-Control"] == "no-store"


def test_a_secret_named_like_a_frontend_variable_is_never_read(settings, clean_env):
    app = _app(
        settings,
        clean_env,
        FRONTEND_JWT_SECRET="frontend-jwt-secret-value-123",  # pragma: allowlist secret (test value)
        FRONTEND_WHATSAPP_ACCESS_TOKEN="EAAGfrontendtoken999",
        FRONTEND_DATABASE_URL="postgresql://u:pw-in-url-42@db/x",  # pragma: allowlist secret (test value)
    )
    response = app.test_client().get("/config.json")
    body = response.get_data(as_text=True)
    assert set(response.get_json()) == CONFIG_KEYS
    for leaked in ("frontend-jwt-secret-value-123", "EAAGfrontendtoken999", "pw-in-url-42", "SECRET", "TOKEN"):
        assert leaked not in body


# Values that would be accepted if they were not also a backend credential.
VALID_LOOKING = {
    "FRONTEND_ENV_LABEL": "Sup3rSecretA1",
    "FRONTEND_API_BASE": "/Sup3rSecretA1",
    "FRONTEND_POLL_INTERVAL_MS": "4242",
}


@pytest.mark.parametrize("variable", PUBLIC_VARIABLES)
@pytest.mark.parametrize("secret_attr", ["jwt_secret", "whatsapp_app_secret", "whatsapp_verify_token"])
def test_a_public_variable_holding_a_backend_secret_is_refused(variable, secret_attr, settings, clean_env, capsys):
    value = VALID_LOOKING[variable]
    secret = value.strip("/")
    settings = settings.replace(**{secret_attr: secret})
    body = _app(settings, clean_env, **{variable: value}).test_client().get("/config.json").get_data(as_text=True)
    assert secret not in body
    log = capsys.readouterr().err
    assert f"{variable} holds a backend credential" in log  # the log names the variable...
    assert secret not in log  # ...never the value


def test_the_guard_is_what_refuses_them(settings, clean_env):
    """Control: the same values are served when they are not a credential, so the test above can fail."""
    app = _app(settings, clean_env, **VALID_LOOKING)
    config = app.test_client().get("/config.json").get_json()
    assert config["env_label"] == "Sup3rSecretA1"
    assert config["api_base"] == "/Sup3rSecretA1"
    assert config["poll_interval_ms"] == 4242


def test_a_value_containing_a_secret_is_refused_even_when_settings_ignore_it(settings, clean_env, capsys):
    """local ignores WHATSAPP_ACCESS_TOKEN, but the process still holds it: it must not leak either."""
    clean_env.setenv("WHATSAPP_ACCESS_TOKEN", "EAAGrealtokenvalue")
    body = (
        _app(settings, clean_env, FRONTEND_ENV_LABEL="X EAAGrealtokenvalue")
        .test_client()
        .get("/config.json")
        .get_data(as_text=True)
    )
    assert "EAAGrealtokenvalue" not in body
    assert "EAAGrealtokenvalue" not in capsys.readouterr().err


def test_the_database_password_is_refused(settings, clean_env):
    url = "postgresql://app:Db-Pass-777@127.0.0.1:5432/mv_os"  # pragma: allowlist secret (test value)
    config, refused = build_config(
        settings.replace(database_url=url), {"FRONTEND_ENV_LABEL": "Db-Pass-777", "FRONTEND_API_BASE": url}
    )
    assert "Db-Pass-777" not in str(config.as_json())
    assert {r.split()[0] for r in refused} == {"FRONTEND_ENV_LABEL", "FRONTEND_API_BASE"}


def test_secret_variables_are_all_checked():
    """If a credential is added to settings, the config guard covers it (it reads SECRET_VARIABLES)."""
    settings = Settings(environment=Environment.LOCAL, database_url="postgresql://a@127.0.0.1/b")
    environ = {name: f"value-of-{name}" for name in SECRET_VARIABLES}
    for name in SECRET_VARIABLES:
        config, refused = build_config(settings, {**environ, "FRONTEND_ENV_LABEL": environ[name]})
        assert config.env_label == "LOCAL", name
        assert refused


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("FRONTEND_API_BASE", "https://evil.example/api"),
        ("FRONTEND_API_BASE", "//evil.example/api"),
        ("FRONTEND_API_BASE", "api"),
        ("FRONTEND_POLL_INTERVAL_MS", "5"),
        ("FRONTEND_POLL_INTERVAL_MS", "1e3"),
        ("FRONTEND_POLL_INTERVAL_MS", "600001"),
        ("FRONTEND_ENV_LABEL", "<script>alert(1)</script>"),
        ("FRONTEND_ENV_LABEL", "x" * 40),
    ],
)
def test_malformed_values_fall_back_to_the_default(variable, value, settings, clean_env, capsys):
    config = _app(settings, clean_env, **{variable: value}).test_client().get("/config.json").get_json()
    assert config == {"environment": "local", "env_label": "LOCAL", "api_base": "/api", "poll_interval_ms": 3000}
    assert variable in capsys.readouterr().err


def test_staging_cannot_call_itself_production(settings, clean_env):
    """The banner exists so nobody mistakes staging for production: a label naming another environment is
    refused and the loud default stays."""
    app = _app(_in(settings, Environment.STAGING), clean_env, FRONTEND_ENV_LABEL="PRODUCTION")
    assert app.test_client().get("/config.json").get_json()["env_label"] == "STAGING"


def test_a_custom_label_and_api_base_are_served(settings, clean_env):
    app = _app(
        _in(settings, Environment.STAGING),
        clean_env,
        FRONTEND_ENV_LABEL="STAGING EU",
        FRONTEND_API_BASE="/api/",
        FRONTEND_POLL_INTERVAL_MS="1500",
    )
    config = app.test_client().get("/config.json").get_json()
    assert config == {"environment": "staging", "env_label": "STAGING EU", "api_base": "/api", "poll_interval_ms": 1500}


def test_index_and_assets_are_served_same_origin_with_a_strict_csp(client):
    index = client.get("/")
    assert index.status_code == 200
    assert index.mimetype == "text/html"
    html = index.get_data(as_text=True)
    assert 'id="env-banner"' in html
    assert "default-src 'self'" in index.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in index.headers["Content-Security-Policy"]
    assert index.headers["X-Content-Type-Options"] == "nosniff"
    # Everything the page loads is our own file, and every one of them is served.
    for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', html):
        assert client.get(asset).status_code == 200, asset
    script = client.get("/static/js/main.js")
    assert "javascript" in script.mimetype
    assert script.headers["Cache-Control"] == "no-cache"


def test_every_module_the_app_imports_is_served(client):
    """No build step: the browser follows the ES module imports, so each one must exist."""
    pending, seen = ["/static/js/main.js"], set()
    while pending:
        url = pending.pop()
        if url in seen:
            continue
        seen.add(url)
        response = client.get(url)
        assert response.status_code == 200, url
        base = url.rsplit("/", 1)[0]
        for spec in re.findall(r"""^import[^'"]*['"](\.[^'"]+)['"]""", response.get_data(as_text=True), re.M):
            parts = (base + "/" + spec).split("/")
            resolved: list[str] = []
            for part in parts:
                if part == "..":
                    resolved.pop()
                elif part != ".":
                    resolved.append(part)
            pending.append("/".join(resolved))
    assert len(seen) >= 8


@pytest.mark.parametrize(
    "path", ["/static/../backend/mv_os/settings.py", "/static/%2e%2e/%2e%2e/pyproject.toml", "/static/js/nope.js"]
)
def test_nothing_outside_frontend_static_is_served(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


def test_unknown_paths_keep_their_json_404_and_405(client):
    """Serving `/` must not turn unknown API paths into HTML, or POST to them into 405."""
    assert client.get("/api/nope").get_json()["error"]["code"] == "not_found"
    assert client.post("/nope", json={}).status_code == 404


def test_frontend_dir_is_overridable_for_the_image(tmp_path, settings, clean_env):
    (tmp_path / "static").mkdir()
    (tmp_path / "index.html").write_text("<!doctype html><title>image copy</title>")
    app = _app(settings, clean_env, FRONTEND_DIR=str(tmp_path))
    assert "image copy" in app.test_client().get("/").get_data(as_text=True)
    assert frontend_dir({}) == ROOT / "frontend"


def test_a_missing_frontend_is_a_clear_404_and_the_api_still_works(tmp_path, settings, clean_env):
    app = _app(settings, clean_env, FRONTEND_DIR=str(tmp_path / "absent"))
    client = app.test_client()
    response = client.get("/")
    assert response.status_code == 404
    assert "not installed" in response.get_json()["error"]["message"]
    assert client.get("/healthz").status_code == 200
    assert client.get("/config.json").status_code == 200
