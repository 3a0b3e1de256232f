"""`audit`: isolation proven from what AWS reports (moto Secrets Manager/ECR, Stubber'd App Runner)."""

from __future__ import annotations

import pytest

from scripts.release.audit import audit
from tests.release.conftest import aws_clients, create_repository, create_secrets, expect_service, secret_arn


@pytest.fixture
def both(moto, envs, target, apprunner):
    create_repository("IMMUTABLE")
    return [envs["staging"], envs["production"]], aws_clients(target), apprunner[1]


def run(both, values=False, **overrides):
    envs, aws, stub = both
    value_for = overrides.pop("value_for", None)
    arns = {env.name: create_secrets(env, value_for=value_for) for env in envs}
    for env in envs:
        kwargs = overrides.get(env.name, {})
        kwargs.setdefault("secrets", arns[env.name])
        expect_service(stub, env, **kwargs)
    results = audit(envs, lambda e: aws, values=values, salt=b"fixed-test-salt")
    return {r.name: r for r in results}


def test_isolated_environments_pass(both):
    results = run(both)
    assert all(r.ok for r in results.values()), [r.line() for r in results.values() if not r.ok]
    assert set(results) == {
        "secrets-staging",
        "service-secrets-staging",
        "node-env-staging",
        "auto-deploy-staging",
        "secrets-production",
        "service-secrets-production",
        "node-env-production",
        "auto-deploy-production",
        "secrets-distinct",
        "record-immutable",
    }


def test_wrong_node_env_fails(both):
    results = run(both, staging={"node_env": "production"})
    assert results["node-env-staging"].line() == (
        "FAIL node-env-staging: mv-os-backend-staging runs NODE_ENV='production', expected 'staging'"
    )


def test_auto_deploy_on_fails(both):
    results = run(both, production={"auto_deploy": True})
    assert not results["auto-deploy-production"].ok
    assert "an ECR push would deploy past every gate" in results["auto-deploy-production"].reason


def test_staging_service_reading_a_production_secret_fails(both):
    envs, _, _ = both
    staging_live = {var: secret_arn(name) for var, name in envs[0].secrets.items()}
    staging_live["JWT_SECRET"] = secret_arn("mv-os/jwt-secret")
    results = run(both, staging={"secrets": staging_live})
    assert not results["service-secrets-staging"].ok
    assert "JWT_SECRET reads mv-os/jwt-secret, outside mv-os/staging/*" in results["service-secrets-staging"].reason


def test_a_shared_secret_arn_fails(both):
    envs, _, _ = both
    prod_live = {var: secret_arn(name) for var, name in envs[1].secrets.items()}
    prod_live["JWT_SECRET"] = secret_arn("mv-os/staging/jwt-secret")
    results = run(both, production={"secrets": prod_live})
    assert not results["secrets-distinct"].ok
    assert "mv-os/staging/jwt-secret is used by production and staging" in results["secrets-distinct"].reason


def values_for(shared: set[str]):
    def value(env, var):
        owner = "same" if var in shared else env.name
        if var == "DATABASE_URL":
            # pragma: allowlist nextline secret (test value)
            return f"postgresql://app:test-placeholder-{env.name}@db-{owner}.example.internal:5432/mv_os"
        return f"test-placeholder-{owner}-{var.lower()}"

    return value


def test_values_distinct_pass_and_never_print_values(both):
    results = run(both, values=True, value_for=values_for(set()))
    for name in ("distinct-database-host", "distinct-jwt-secret", "distinct-whatsapp-access-token"):
        assert results[name].ok, results[name].line()
    text = "\n".join(r.line() for r in results.values())
    assert "test-placeholder" not in text and "example.internal" not in text


@pytest.mark.parametrize(
    ("shared", "check"),
    [
        ({"DATABASE_URL"}, "distinct-database-host"),
        ({"JWT_SECRET"}, "distinct-jwt-secret"),
        ({"WHATSAPP_ACCESS_TOKEN"}, "distinct-whatsapp-access-token"),
    ],
)
def test_values_shared_between_environments_fail(both, shared, check):
    results = run(both, values=True, value_for=values_for(shared))
    assert not results[check].ok
    assert "share the same" in results[check].reason
    assert "test-placeholder" not in results[check].line()
    others = [r for r in results.values() if r.name.startswith("distinct-") and r.name != check]
    assert all(r.ok for r in others)


def test_without_credentials_audit_fails(envs):
    results = audit([envs["staging"], envs["production"]], lambda e: None)
    assert not any(r.ok for r in results)
    assert results[0].reason == "AWS credentials are missing; cannot audit"
