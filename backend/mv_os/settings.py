"""Settings read from the process environment and validated at start-up.

`NODE_ENV` picks the environment (a row of `policy.POLICIES`); unset means local, the safe default (mock
providers only).  What each environment requires and refuses is read from that row.  `Settings.from_env()`
reads and validates in one go and raises `ConfigError`, whose message is one line that names the variable and
never its value.  Entry points turn that into exit code 2 through `load_or_exit()`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from mv_os.committed import FINGERPRINTS
from mv_os.dburl import DatabaseTarget, connect_params
from mv_os.policy import (
    DEFAULT_ENVIRONMENT,
    PLACEHOLDER,
    REHEARSAL_LOCAL_DATABASE,
    SECRET_VARIABLES,
    Environment,
    Policy,
)

__all__ = ["SECRET_VARIABLES", "ConfigError", "Environment", "Settings", "is_placeholder", "load_or_exit"]

log = logging.getLogger("mv_os.settings")

# Password hashing: werkzeug's scrypt with its default parameters.  PASSWORD_HASH_METHOD may name cheaper scrypt
# parameters ("scrypt:1024:8:1") for the test suite's many logins; only environments whose policy allows it
# (local) accept it.
DEFAULT_PASSWORD_HASH_METHOD = "scrypt"  # noqa: S105  # pragma: allowlist secret (a hash method name)
_PASSWORD_HASH_METHOD = re.compile(r"scrypt(?::(\d+):(\d+):(\d+))?")

_PLACEHOLDER = re.compile(PLACEHOLDER)


# Credential variables and the Settings field each one fills.
_CREDENTIALS = {
    "JWT_SECRET": "jwt_secret",  # pragma: allowlist secret (a variable name, not a value)
    "WHATSAPP_APP_SECRET": "whatsapp_app_secret",  # pragma: allowlist secret (a variable name, not a value)
    "WHATSAPP_VERIFY_TOKEN": "whatsapp_verify_token",
    "WHATSAPP_ACCESS_TOKEN": "whatsapp_access_token",
    "WHATSAPP_PHONE_NUMBER_ID": "whatsapp_phone_number_id",
    "SMOKE_USER_PASSWORD": "smoke_user_password",  # pragma: allowlist secret (a variable name, not a value)
}


class ConfigError(Exception):
    """A setting is missing or wrong.  `str(err)` is one line that names the variable, never its value."""

    def __init__(self, variable: str, problem: str):
        self.variable = variable
        self.problem = problem
        super().__init__(f"{variable} {problem}")


def parse_environment(raw: str | None) -> Environment:
    if raw is None or raw.strip() == "":
        return DEFAULT_ENVIRONMENT
    try:
        return Environment(raw.strip())
    except ValueError:
        allowed = ", ".join(e.value for e in Environment)
        raise ConfigError("NODE_ENV", f"is not a known environment (allowed: {allowed}; unset means local)") from None


def is_placeholder(value: str) -> bool:
    return bool(_PLACEHOLDER.search(value))


def is_committed(value: str) -> bool:
    """Whether `value` is one of the repository's own credential values (`committed.py`, by fingerprint)."""
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32] in FINGERPRINTS


def database_target(url: str) -> DatabaseTarget:
    """The URL or keyword form, with `host=`/`hostaddr=` given in the query string or as keywords."""
    try:
        params = connect_params(url)
    except Exception:  # noqa: BLE001 - psycopg raises several types; the message may echo the URL
        raise ConfigError("DATABASE_URL", "is not a valid PostgreSQL connection URL") from None
    hosts = str(params.get("host") or "").split(",")  # no host: libpq's default, the local socket
    if params.get("hostaddr"):
        hosts += str(params["hostaddr"]).split(",")
    return DatabaseTarget(hosts=tuple(h.strip().lower() for h in hosts), dbname=str(params.get("dbname") or ""))


def _guard_database(policy: Policy, target: DatabaseTarget, rehearsal: bool = False) -> None:
    """Staging and production never share a database, and local never touches either."""
    for rule in policy.refused_databases:
        if any(rule.matches(host, target.dbname) for host in target.hosts):
            raise ConfigError("DATABASE_URL", rule.reason)
    if policy.refuse_local_database and target.is_local and not rehearsal:
        raise ConfigError("DATABASE_URL", "points at this machine (localhost, loopback or link-local) from production")


def _refused(policy: Policy, value: str) -> bool:
    return any(re.search(pattern, value) for pattern in policy.refused_values)


@dataclass(frozen=True)
class Settings:
    environment: Environment = DEFAULT_ENVIRONMENT
    database_url: str = field(default="", repr=False)
    jwt_secret: str = field(default="local-development-jwt-secret-not-for-cloud-use", repr=False)
    jwt_ttl_seconds: int = 3600
    whatsapp_app_secret: str = field(default="local-app-secret", repr=False)
    whatsapp_verify_token: str = field(default="local-verify-token", repr=False)
    whatsapp_access_token: str | None = field(default=None, repr=False)
    whatsapp_phone_number_id: str = "100000000000001"
    whatsapp_api_version: str = "v23.0"
    whatsapp_api_base_url: str = "https://graph.facebook.com"
    public_base_url: str = "http://127.0.0.1:3000"
    # Messaging (providers/): send timeout in seconds, attempts per send (1 = no retry), backoff base seconds.
    whatsapp_send_timeout: float = 10.0
    whatsapp_send_attempts: int = 4
    whatsapp_retry_backoff: float = 0.5
    # local only: the mock provider posts signed status webhooks (sent/delivered/read) after each send.
    mock_status_webhooks: bool = False
    mock_status_delay: float = 0.2
    git_sha: str = "unknown"
    image_digest: str = "unknown"
    log_level: str = "INFO"
    db_max_connections: int = 8
    # local only (staging/production refuse PASSWORD_HASH_METHOD; auth.py ignores this field there too).
    password_hash_method: str = DEFAULT_PASSWORD_HASH_METHOD
    ignored_credentials: tuple[str, ...] = ()
    # staging: the release engine's smoke test logs in as this user (cli.py creates it at migrate time).
    smoke_user_email: str = ""
    smoke_user_password: str | None = field(default=None, repr=False)

    @property
    def jwt_audience(self) -> str:
        return f"mv-os-{self.environment.value}"

    def secret_values(self) -> tuple[str, ...]:
        """Every credential value held, for log redaction."""
        values = [
            self.jwt_secret,
            self.whatsapp_app_secret,
            self.whatsapp_verify_token,
            self.whatsapp_access_token or "",
            self.smoke_user_password or "",
        ]
        if self.database_url:
            password = connect_params(self.database_url).get("password")
            values.append(str(password or ""))
        return tuple(v for v in values if v and len(v) >= 4)

    def replace(self, **changes) -> Settings:
        return replace(self, **changes)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env_vars = os.environ if environ is None else environ
        environment = parse_environment(env_vars.get("NODE_ENV"))
        policy = environment.policy

        def get(name: str) -> str | None:
            value = env_vars.get(name)
            return value if value not in (None, "") else None

        def int_var(name: str, default: int, minimum: int = 1) -> int:
            raw = get(name)
            if raw is None:
                return default
            try:
                value = int(raw)
            except ValueError:
                raise ConfigError(name, "must be a whole number") from None
            if value < minimum:
                raise ConfigError(name, f"must be at least {minimum}")
            return value

        kwargs: dict = {"environment": environment}
        optional = {
            "WHATSAPP_PHONE_NUMBER_ID": "whatsapp_phone_number_id",
            "WHATSAPP_API_VERSION": "whatsapp_api_version",
            "WHATSAPP_API_BASE_URL": "whatsapp_api_base_url",
            "PUBLIC_BASE_URL": "public_base_url",
            "GIT_SHA": "git_sha",
            "IMAGE_DIGEST": "image_digest",
            "LOG_LEVEL": "log_level",
            "SMOKE_USER_EMAIL": "smoke_user_email",
        }
        for var, attr in optional.items():
            if get(var) is not None:
                kwargs[attr] = get(var)
        kwargs["jwt_ttl_seconds"] = int_var("JWT_TTL_SECONDS", 3600, minimum=60)
        kwargs["db_max_connections"] = int_var("DB_MAX_CONNECTIONS", 8)
        cls._read_messaging_options(get, kwargs)
        kwargs["whatsapp_send_attempts"] = int_var("WHATSAPP_SEND_ATTEMPTS", 4)

        database_url = get("DATABASE_URL")
        if database_url is not None:
            if _refused(policy, database_url):
                raise ConfigError("DATABASE_URL", "still holds the template placeholder; set the real value")
            _guard_database(policy, database_target(database_url), get(REHEARSAL_LOCAL_DATABASE) == "1")
            kwargs["database_url"] = database_url

        if database_url is None:
            hint = (
                "is required in staging and production"
                if environment.deployed
                else "is not set (run `nox -s dev` for the embedded PostgreSQL, or `docker compose up -d` and "
                "copy env/backend.env.local.example)"
            )
            raise ConfigError("DATABASE_URL", hint)
        cls._read_secrets(policy, get, kwargs)

        method = get("PASSWORD_HASH_METHOD")
        if method is not None:
            kwargs["password_hash_method"] = _password_hash_method(policy, method)

        level = kwargs.get("log_level", "INFO").upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ConfigError("LOG_LEVEL", "must be one of DEBUG, INFO, WARNING, ERROR")
        kwargs["log_level"] = level
        if not re.fullmatch(r"v\d+\.\d+", kwargs.get("whatsapp_api_version", "v23.0")):
            raise ConfigError("WHATSAPP_API_VERSION", "must look like v23.0")
        return cls(**kwargs)

    @staticmethod
    def _read_secrets(policy: Policy, get, kwargs: dict) -> None:
        """The credentials: required ones must be set and real (no refused value, long enough); the ones this
        environment ignores (local: the real provider's token) are only noted."""
        for var, attr in _CREDENTIALS.items():
            value = get(var)
            if value is None:
                if var in policy.required:
                    raise ConfigError(var, "is required in staging and production")
                continue
            if var in policy.ignored_credentials:
                continue
            if var in policy.refused_credentials:
                raise ConfigError(var, policy.refused_credentials[var])
            if _refused(policy, value):
                raise ConfigError(var, "still holds the template placeholder; set the real value")
            kwargs[attr] = value
        for var, minimum in policy.min_bytes.items():
            value = kwargs.get(_CREDENTIALS[var])
            if value is None:
                continue
            if len(value.encode("utf-8", "surrogatepass")) < minimum:
                raise ConfigError(var, f"must be at least {minimum} bytes")
            if len(set(value)) < policy.min_distinct:
                raise ConfigError(var, f"must use at least {policy.min_distinct} different characters (a random value)")
        for var, attr in _CREDENTIALS.items():
            if policy.refuse_committed and kwargs.get(attr) and is_committed(kwargs[attr]):
                raise ConfigError(var, "holds a value committed to the repository; set this environment's own secret")
        if policy.deployed and not kwargs["whatsapp_phone_number_id"].isdigit():
            raise ConfigError("WHATSAPP_PHONE_NUMBER_ID", "must be the numeric phone number id")
        if bool(kwargs.get("smoke_user_email")) != bool(kwargs.get("smoke_user_password")):
            raise ConfigError("SMOKE_USER_EMAIL", "and SMOKE_USER_PASSWORD go together: set both or neither")
        kwargs["ignored_credentials"] = tuple(v for v in policy.ignored_credentials if get(v) is not None)

    @staticmethod
    def _read_messaging_options(get, kwargs: dict) -> None:
        def number(name: str, attr: str, minimum: float) -> None:
            raw = get(name)
            if raw is None:
                return
            try:
                value = float(raw)
            except ValueError:
                raise ConfigError(name, "must be a number of seconds") from None
            if not value >= minimum or value > 3600:
                raise ConfigError(name, f"must be between {minimum:g} and 3600 seconds")
            kwargs[attr] = value

        number("WHATSAPP_SEND_TIMEOUT", "whatsapp_send_timeout", 0.1)
        number("WHATSAPP_RETRY_BACKOFF", "whatsapp_retry_backoff", 0.0)
        number("MOCK_STATUS_DELAY", "mock_status_delay", 0.0)
        flag = get("MOCK_STATUS_WEBHOOKS")
        if flag is not None:
            if flag.strip().lower() not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
                raise ConfigError("MOCK_STATUS_WEBHOOKS", "must be 1/true/yes or 0/false/no")
            kwargs["mock_status_webhooks"] = flag.strip().lower() in ("1", "true", "yes", "on")


def _password_hash_method(policy: Policy, method: str) -> str:
    """PASSWORD_HASH_METHOD: local only, and scrypt with workable parameters (werkzeug reads them back from each
    stored hash, so a password hashed with one setting still checks under another)."""
    if not policy.password_hash_override:
        raise ConfigError(
            "PASSWORD_HASH_METHOD", "is for local and tests only; staging and production always use scrypt's defaults"
        )
    match = _PASSWORD_HASH_METHOD.fullmatch(method.strip())
    if match is None:
        raise ConfigError("PASSWORD_HASH_METHOD", "must be scrypt or scrypt:N:r:p (e.g. scrypt:1024:8:1)")
    if match.group(1) is not None:
        n, r, p = (int(g) for g in match.groups())
        if not (1024 <= n <= 32768 and n & (n - 1) == 0 and 1 <= r <= 16 and 1 <= p <= 16):
            raise ConfigError("PASSWORD_HASH_METHOD", "needs N a power of two from 1024 to 32768, r and p from 1 to 16")
    return method.strip()


def load_or_exit(environ: Mapping[str, str] | None = None) -> Settings:
    """Read settings for a process entry point; on a config error print one line and exit 2."""
    try:
        return Settings.from_env(environ)
    except ConfigError as err:
        print(f"mv-os: config error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
