"""`nox -s audit`: prove, from what AWS says right now, that staging and production are isolated.

Checks (one `PASS name` / `FAIL name: reason` line each; any FAIL exits non-zero):
- secrets-<env>: every secret of the environment resolves inside its own namespace;
- service-secrets-<env>: the running service reads exactly those ARNs (nothing from another namespace);
- secrets-distinct: no secret ARN is shared between environments;
- node-env-<env>: the service runs with NODE_ENV=<env>;
- auto-deploy-<env>: AutoDeploymentsEnabled is off (an ECR push cannot deploy past the gates);
- record-immutable: the ECR repository's tags are immutable (a `git-<sha>` tag never moves to another image);
With --values (needs a role that may read both environments' values): salted fingerprints, never values:
- distinct-database-host, distinct-jwt-secret, distinct-<whatsapp secret>.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from scripts.release import secrets as secrets_mod
from scripts.release.environments import Environment
from scripts.release.gates import Aws, Result
from scripts.release.images import tag_mutability

VALUE_CHECKS = {
    "DATABASE_URL": "distinct-database-host",
    "JWT_SECRET": "distinct-jwt-secret",  # pragma: allowlist secret (audit fixture value)
}


def audit(
    envs: list[Environment],
    aws_for: Callable[[Environment], Aws | None],
    *,
    values: bool = False,
    salt: bytes | None = None,
) -> list[Result]:
    results: list[Result] = []
    resolved: dict[str, dict[str, str]] = {}
    running: dict[str, dict[str, str]] = {}
    clients: dict[str, Aws] = {}
    for env in envs:
        aws = aws_for(env)
        if aws is None:
            results.append(Result(f"aws-{env.name}", False, "AWS credentials are missing; cannot audit"))
            continue
        clients[env.name] = aws
        arns, problems = secrets_mod.resolve(aws.secretsmanager, env)
        resolved[env.name] = arns
        results.append(
            Result(f"secrets-{env.name}", not problems, "; ".join(problems) or f"all in {env.secret_namespace}*")
        )
        try:
            state = aws.target.describe(env.service)
        except Exception as exc:  # noqa: BLE001 - report, keep auditing the rest
            results.append(Result(f"service-{env.name}", False, f"cannot describe {env.service}: {exc}"))
            continue
        running[env.name] = state.secrets
        results.append(_service_secrets(env, state.secrets, arns))
        node_env = state.variables.get("NODE_ENV")
        results.append(
            _check(
                f"node-env-{env.name}",
                node_env == env.node_env,
                f"NODE_ENV={node_env}",
                f"{env.service} runs NODE_ENV={node_env!r}, expected {env.node_env!r}",
            )
        )
        results.append(
            _check(
                f"auto-deploy-{env.name}",
                state.auto_deploy is False,
                "off",
                f"{env.service} has AutoDeploymentsEnabled={state.auto_deploy}: an ECR push would deploy past "
                "every gate (deploy once with `nox -s deploy`, which turns it off)",
            )
        )
    results.append(_distinct(resolved, running))
    results.extend(_immutable_records(envs, clients))
    if values:
        results.extend(_values(envs, clients, resolved, salt or os.urandom(16)))
    return results


def _check(name: str, ok: bool, passed: str, failed: str) -> Result:
    return Result(name, ok, passed if ok else failed)


def _service_secrets(env: Environment, live: dict[str, str], arns: dict[str, str]) -> Result:
    name = f"service-secrets-{env.name}"
    problems = []
    for var, arn in sorted(live.items()):
        secret = secrets_mod.arn_name(arn)
        if secret is None or not env.secret_name_allowed(secret):
            problems.append(f"{var} reads {secret or arn}, outside {env.secret_namespace}*")
        elif var in arns and arns[var] != arn:
            problems.append(f"{var} reads {secret}, environments.toml says {env.secrets[var]}")
    missing = sorted(set(env.secrets) - set(live))
    if missing:
        problems.append(f"{', '.join(missing)} not set on {env.service}")
    return Result(name, not problems, "; ".join(problems) or f"{len(live)} secrets, all {env.name}'s own")


def _distinct(resolved: dict[str, dict[str, str]], running: dict[str, dict[str, str]]) -> Result:
    """No secret (by name, so any version/suffix of its ARN counts) is used by two environments."""
    owner: dict[str, str] = {}
    shared = []
    for env_name in sorted(set(resolved) | set(running)):
        arns = set(resolved.get(env_name, {}).values()) | set(running.get(env_name, {}).values())
        for secret in sorted({secrets_mod.arn_name(arn) or arn for arn in arns}):
            if secret in owner and owner[secret] != env_name:
                shared.append(f"{secret} is used by {owner[secret]} and {env_name}")
            owner.setdefault(secret, env_name)
    if len(resolved) < 2:
        return Result("secrets-distinct", False, "could not read both environments")
    return Result("secrets-distinct", not shared, "; ".join(shared) or "no secret is shared")


def _immutable_records(envs: list[Environment], clients: dict[str, Aws]) -> list[Result]:
    out = []
    for repository in sorted({e.ecr_repository for e in envs if e.name in clients}):
        env = next(e for e in envs if e.ecr_repository == repository and e.name in clients)
        try:
            mutability = tag_mutability(clients[env.name].ecr, repository)
        except Exception as exc:  # noqa: BLE001
            out.append(Result("record-immutable", False, f"cannot read ECR repository {repository}: {exc}"))
            continue
        out.append(
            _check(
                "record-immutable",
                mutability == "IMMUTABLE",
                f"{repository} tags are immutable",
                f"ECR repository {repository} has imageTagMutability={mutability}: a git-<sha> tag could be "
                "moved to another image (set IMMUTABLE)",
            )
        )
    return out


def _values(
    envs: list[Environment], clients: dict[str, Aws], resolved: dict[str, dict[str, str]], salt: bytes
) -> list[Result]:
    prints: dict[str, dict[str, str]] = {}
    problems: list[Result] = []
    for env in envs:
        if env.name not in clients:
            continue
        prints[env.name] = {}
        for var, arn in sorted(resolved.get(env.name, {}).items()):
            try:
                value = _secret_string(clients[env.name].secretsmanager, arn)
            except Exception as exc:  # noqa: BLE001 - never echo the error body (it could hold a value)
                problems.append(
                    Result(f"read-{env.name}-{var}", False, f"cannot read its value ({type(exc).__name__})")
                )
                continue
            if var == "DATABASE_URL":
                value = secrets_mod.database_host(value)
            prints[env.name][var] = secrets_mod.fingerprint(value, salt)
    results = list(problems)
    if len(prints) < 2:
        return [*results, Result("values", False, "could not read both environments' values")]
    a, b = sorted(prints)
    for var in sorted(set(prints[a]) & set(prints[b])):
        check = VALUE_CHECKS.get(var, f"distinct-{var.lower().replace('_', '-')}")
        same = prints[a][var] == prints[b][var]
        what = "database host" if var == "DATABASE_URL" else var
        detail = f"{a} {prints[a][var]} / {b} {prints[b][var]}"
        results.append(Result(check, not same, f"{a} and {b} share the same {what} ({detail})" if same else detail))
    return results


def _secret_string(client: Any, arn: str) -> str:
    got = client.get_secret_value(SecretId=arn)
    if "SecretString" in got:
        return got["SecretString"]
    return got["SecretBinary"].decode("utf-8", "replace")
