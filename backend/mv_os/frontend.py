"""The static frontend (frontend/) served by the backend, same origin, and its runtime config.

- `GET /`                   frontend/index.html
- `GET /static/<path>`      frontend/static/... (CSS, JavaScript ES modules); no build step
- `GET /config.json`        the public runtime config, read when the app starts

The same image digest runs in staging and then production, so nothing environment-specific is baked into the
files: the browser fetches `/config.json` at run time.  That document is built ONLY from the variables named
in `PUBLIC_VARIABLES` (the ones in env/frontend.env.*.example) -- an allow-list, not a prefix match, so a
variable such as FRONTEND_JWT_SECRET is never read.  A value that holds one of the backend's credentials, or
that is malformed, is dropped (the log names the variable, never the value) and the environment's default is
used instead: the config is cosmetic, so a typo must not take the service down, and a secret must never reach
a browser.  Defaults come from the environment's policy row, so an image with no FRONTEND_* variable at all is
still correct.

Where the files live: FRONTEND_DIR if set (the image), else <repo>/frontend.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from flask import Blueprint, Flask, current_app, jsonify, send_from_directory
from werkzeug.exceptions import NotFound

from mv_os.policy import SECRET_VARIABLES, Environment
from mv_os.settings import Settings

log = logging.getLogger("mv_os.frontend")
bp = Blueprint("frontend", __name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
# The only variables /config.json is ever built from.  Keep in step with env/frontend.env.*.example.
PUBLIC_VARIABLES = ("FRONTEND_ENV_LABEL", "FRONTEND_API_BASE", "FRONTEND_POLL_INTERVAL_MS")
MIN_POLL_INTERVAL_MS = 200
MAX_POLL_INTERVAL_MS = 60_000
DEFAULT_API_BASE = "/api"

_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._()/-]{0,31}")
# Same origin only (no scheme, no host, no `//`): the backend serves both, so there is never CORS.
_API_BASE = re.compile(r"(?:/[A-Za-z0-9._~-]+)+")

# The pages run our own files only; the API is same-origin.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


@dataclass(frozen=True)
class FrontendConfig:
    environment: str
    env_label: str
    api_base: str
    poll_interval_ms: int

    def as_json(self) -> dict:
        return {
            "environment": self.environment,
            "env_label": self.env_label,
            "api_base": self.api_base,
            "poll_interval_ms": self.poll_interval_ms,
        }


def frontend_dir(environ: Mapping[str, str] | None = None) -> Path:
    env_vars = os.environ if environ is None else environ
    configured = env_vars.get("FRONTEND_DIR")
    return Path(configured).resolve() if configured else REPO_ROOT / "frontend"


def _secret_values(settings: Settings, environ: Mapping[str, str]) -> tuple[str, ...]:
    values = set(settings.secret_values())
    if settings.database_url:
        values.add(settings.database_url)
    # Whatever the process holds under a credential's name, even one Settings ignores (local drops tokens).
    values.update(environ.get(name, "") for name in SECRET_VARIABLES)
    return tuple(v for v in values if len(v) >= 4)


def build_config(settings: Settings, environ: Mapping[str, str] | None = None) -> tuple[FrontendConfig, list[str]]:
    """The public config and the names of the variables that were refused (with why, never the value)."""
    env_vars = os.environ if environ is None else environ
    environment = settings.environment
    secrets = _secret_values(settings, env_vars)
    refused: list[str] = []

    def read(name: str) -> str | None:
        raw = env_vars.get(name)
        if raw is None or raw.strip() == "":
            return None
        value = raw.strip()
        if any(secret in value for secret in secrets):
            refused.append(f"{name} holds a backend credential")
            return None
        return value

    label = environment.value.upper()
    raw_label = read("FRONTEND_ENV_LABEL")
    if raw_label is not None:
        others = [e.value for e in Environment if e is not environment]
        if not _LABEL.fullmatch(raw_label):
            refused.append("FRONTEND_ENV_LABEL must be 1-32 letters, digits, spaces or ._()/-")
        elif any(other in raw_label.lower() for other in others):
            # A staging banner that says PRODUCTION is exactly the mistake the banner exists to prevent.
            refused.append(f"FRONTEND_ENV_LABEL names another environment than NODE_ENV={environment.value}")
        else:
            label = raw_label

    api_base = DEFAULT_API_BASE
    raw_base = read("FRONTEND_API_BASE")
    if raw_base is not None:
        if _API_BASE.fullmatch(raw_base.rstrip("/") or "/"):
            api_base = raw_base.rstrip("/")
        else:
            refused.append("FRONTEND_API_BASE must be a same-origin path such as /api")

    poll = environment.policy.poll_interval_ms
    raw_poll = read("FRONTEND_POLL_INTERVAL_MS")
    if raw_poll is not None:
        if raw_poll.isdigit() and MIN_POLL_INTERVAL_MS <= int(raw_poll) <= MAX_POLL_INTERVAL_MS:
            poll = int(raw_poll)
        else:
            refused.append(
                f"FRONTEND_POLL_INTERVAL_MS must be a whole number from {MIN_POLL_INTERVAL_MS} "
                f"to {MAX_POLL_INTERVAL_MS}"
            )

    config = FrontendConfig(environment.value, label, api_base, poll)
    return config, refused


@bp.record_once
def _setup(state) -> None:
    app: Flask = state.app
    config, refused = build_config(app.config["SETTINGS"])
    for reason in refused:
        log.warning("frontend config: %s; using the %s default", reason, config.environment)
    root = frontend_dir()
    if not (root / "index.html").is_file():
        log.warning("frontend files not found at %s (set FRONTEND_DIR); `/` answers 404", root)
    app.extensions["mv_os.frontend"] = {"config": config, "dir": root}


def _state() -> dict:
    return current_app.extensions["mv_os.frontend"]


@bp.after_request
def _headers(response):
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY  # the rest: headers.py
    response.headers.setdefault("Cache-Control", "no-cache")  # revalidate (ETag): a deploy shows at once
    return response


@bp.get("/")
def index():
    root: Path = _state()["dir"]
    if not (root / "index.html").is_file():
        raise NotFound("The frontend is not installed in this image.")
    return send_from_directory(root, "index.html")


@bp.get("/static/<path:filename>")
def static_file(filename: str):
    # send_from_directory refuses paths that leave the folder (.., absolute paths) with a 404.
    return send_from_directory(_state()["dir"] / "static", filename)


@bp.get("/config.json")
def config_json():
    response = jsonify(_state()["config"].as_json())
    response.headers["Cache-Control"] = "no-store"
    return response
