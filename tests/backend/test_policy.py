"""The environment policy table: every environment is one row, and the rows keep the guarantees the settings,
registry, frontend and auth rely on."""

from __future__ import annotations

import pytest

from mv_os.policy import POLICIES, SECRET_VARIABLES, Environment
from mv_os.settings import is_placeholder

pytestmark = pytest.mark.unit

DEPLOYED = [name for name, policy in POLICIES.items() if policy.deployed]


def test_the_environments_are_the_rows_of_the_table():
    assert [e.value for e in Environment] == list(POLICIES)
    assert all(Environment(name).policy is POLICIES[name] for name in POLICIES)


@pytest.mark.parametrize("name", DEPLOYED)
def test_a_deployed_environment_requires_real_credentials_and_sends_through_meta(name):
    policy = POLICIES[name]
    # DATABASE_URL has its own rules; the smoke user's password is staging's alone and optional.
    assert set(SECRET_VARIABLES) - {"DATABASE_URL", "SMOKE_USER_PASSWORD"} <= set(policy.required)
    assert policy.refused_values and policy.provider == "whatsapp_cloud"
    assert not policy.password_hash_override and not policy.ignored_credentials
    assert policy.min_bytes.get("JWT_SECRET", 0) >= 32


def test_no_two_deployed_environments_accept_each_others_database():
    staging, production = POLICIES["staging"], POLICIES["production"]
    assert any(rule.matches("mv-os-db.abc.rds.amazonaws.com", "mv_os") for rule in staging.refused_databases)
    assert any(rule.matches("mv-os-db-staging.abc.rds.amazonaws.com", "mv_os") for rule in production.refused_databases)
    assert not any(rule.matches("mv-os-db-staging.abc", "mv_os") for rule in staging.refused_databases)
    assert production.refuse_local_database and not staging.refuse_local_database


def test_local_never_touches_a_cloud_database_and_only_ever_mocks():
    local = POLICIES["local"]
    assert local.provider == "mock" and not local.deployed and not local.required
    assert all(
        any(r.matches(host, "mv_os") for r in local.refused_databases) for host in ("mv-os-db", "mv-os-db-staging")
    )


def test_the_template_placeholders_are_refused_values():
    assert is_placeholder("<staging phone number id>") and is_placeholder("change-me")
    assert not is_placeholder("q9X2v7LmR4tP8wZ1yK6nB3cH5jD0fG2s")  # pragma: allowlist secret (a made-up value)
