"""What each environment requires and refuses: one row per environment in `POLICIES`.

Read by settings (required secrets, refused values and databases), the provider registry (provider kind),
the frontend config (defaults) and auth (whether PASSWORD_HASH_METHOD is honoured).  Adding an environment,
say `preview`, is one row; `Environment` is made from the table's names.  Imports nothing of ours."""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

# The variables that hold credentials: their values never appear in logs, errors or the frontend config.
SECRET_VARIABLES = (
    "DATABASE_URL",
    "JWT_SECRET",
    "WHATSAPP_APP_SECRET",
    "WHATSAPP_VERIFY_TOKEN",
    "WHATSAPP_ACCESS_TOKEN",
    "SMOKE_USER_PASSWORD",
)
# What the env templates put where a real value goes.
PLACEHOLDER = (
    r"(?ix) change[-_ ]?me | replace[-_ ]?me | placeholder | <[^>]*> | \$\{[^}]*\} | "
    r"^(?:x{3,}|\*+|todo|tbd|secret|password|example)$ | from[-_ ]secrets[-_ ]manager"
)
CLOUD_CREDENTIALS = (
    "JWT_SECRET",
    "WHATSAPP_APP_SECRET",
    "WHATSAPP_VERIFY_TOKEN",
    "WHATSAPP_ACCESS_TOKEN",
    "WHATSAPP_PHONE_NUMBER_ID",
)
_STAGING_DB = r"mv-os-db-staging"
_PRODUCTION_DB = r"mv-os-db(?!-staging)"
# A deployed secret's minimum length in UTF-8 bytes, and how many different characters it must use (a random
# 16-character value uses 12 or more; "aaaaaaaaaaaaaaaa" or "abababab..." is refused).
CLOUD_MIN_BYTES = MappingProxyType(
    {"JWT_SECRET": 32, "WHATSAPP_APP_SECRET": 16, "WHATSAPP_VERIFY_TOKEN": 16, "SMOKE_USER_PASSWORD": 24}
)
MIN_DISTINCT_CHARACTERS = 8


@dataclass(frozen=True)
class RefusedDatabase:
    """A DATABASE_URL whose `<host> <dbname>` matches `pattern` is refused with `reason`."""

    pattern: str
    reason: str

    def matches(self, host: str, dbname: str) -> bool:
        return re.search(self.pattern, f"{host} {dbname}", re.IGNORECASE) is not None


# The rehearsal's stand-in for App Runner runs production on this machine, against a local PostgreSQL.  Only the
# stand-in sets this; the release engine's `request` gate refuses to send it, so a real service never has it.
REHEARSAL_LOCAL_DATABASE = "MV_OS_REHEARSAL_LOCAL_DATABASE"


@dataclass(frozen=True)
class Policy:
    deployed: bool  # a cloud environment: JSON logs, real credentials only
    provider: str  # the messaging adapter: "mock" or "whatsapp_cloud"
    required: tuple[str, ...] = ()  # variables that must be set
    refused_values: tuple[str, ...] = ()  # patterns no credential (nor DATABASE_URL) may match
    min_bytes: Mapping[str, int] = field(default_factory=dict)  # a secret's minimum length, per variable
    min_distinct: int = 0  # characters a secret in `min_bytes` must use at least (a crude entropy floor)
    refuse_committed: bool = False  # refuse any credential whose fingerprint is in `committed.FINGERPRINTS`
    refused_databases: tuple[RefusedDatabase, ...] = ()
    refuse_local_database: bool = False
    ignored_credentials: tuple[str, ...] = ()  # present in the environment but never used here
    refused_credentials: Mapping[str, str] = field(default_factory=dict)  # variable -> why it may not be set here
    password_hash_override: bool = False  # PASSWORD_HASH_METHOD accepted (the test suite's cheap scrypt)
    poll_interval_ms: int = 5000  # the inbox's default refresh
    proxy_hops: int = 0  # trusted proxies in front that append to X-Forwarded-For (App Runner's: 1)


# What every cloud environment shares; its rows below add their own database rules.
_CLOUD = Policy(
    deployed=True,
    provider="whatsapp_cloud",
    required=CLOUD_CREDENTIALS,
    refused_values=(PLACEHOLDER,),
    min_bytes=CLOUD_MIN_BYTES,
    min_distinct=MIN_DISTINCT_CHARACTERS,
    refuse_committed=True,
    proxy_hops=1,
)

POLICIES: Mapping[str, Policy] = MappingProxyType(
    {
        "local": Policy(
            deployed=False,
            provider="mock",
            refused_databases=(RefusedDatabase(r"mv-os-db", "points at a cloud database (mv-os-db*) from local"),),
            ignored_credentials=("WHATSAPP_ACCESS_TOKEN",),
            password_hash_override=True,
            poll_interval_ms=3000,
        ),
        "staging": replace(
            _CLOUD,
            refused_databases=(
                RefusedDatabase(_PRODUCTION_DB, "points at the production database (mv-os-db) from staging"),
            ),
        ),
        "production": replace(
            _CLOUD,
            refused_databases=(
                RefusedDatabase(_STAGING_DB, "points at the staging database (mv-os-db-staging) from production"),
            ),
            refuse_local_database=True,
            # Staging's smoke test logs in as a smoke user; production's never does, so no CI role holds a
            # password that opens production (docs/decisions/0040).
            refused_credentials={"SMOKE_USER_PASSWORD": "is for staging's smoke test; production has no smoke user"},
        ),
    }
)


class _Environment(enum.StrEnum):
    @property
    def policy(self) -> Policy:
        return POLICIES[self.value]

    @property
    def deployed(self) -> bool:
        return self.policy.deployed


Environment = _Environment("Environment", {name.upper(): name for name in POLICIES}, module=__name__)
DEFAULT_ENVIRONMENT = Environment("local")  # NODE_ENV unset: the safe default (mock providers only)
