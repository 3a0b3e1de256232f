"""Secrets Manager: resolve each environment's secret NAMES to full ARNs, inside its own namespace.

The engine never reads a secret value to deploy: App Runner's instance role does that when the deployment
starts.  Values are read only by `audit --values`, which prints short salted fingerprints, never values."""

from __future__ import annotations

import hashlib
import hmac
import re
from urllib.parse import urlsplit

from botocore.exceptions import ClientError

from scripts.release.environments import Environment

_ARN = re.compile(
    r"arn:aws[a-z-]*:secretsmanager:(?P<region>[a-z0-9-]+):(?P<account>[0-9]{12}):secret:"
    r"(?P<name>.+)-[A-Za-z0-9]{6}"
)


def arn_parts(arn: str) -> dict[str, str] | None:
    match = _ARN.fullmatch(arn or "")
    return match.groupdict() if match else None


def arn_name(arn: str) -> str | None:
    parts = arn_parts(arn)
    return parts["name"] if parts else None


def resolve(client, env: Environment) -> tuple[dict[str, str], list[str]]:
    """`describe_secret` every secret of `env`.  Returns ({VAR: full ARN}, [problems]); a problem names the
    variable and the secret, never a value."""
    arns: dict[str, str] = {}
    problems: list[str] = []
    for var, name in sorted(env.secrets.items()):
        if not env.secret_name_allowed(name):
            problems.append(f"{var}: {name} is outside {env.name}'s namespace {env.secret_namespace}*")
            continue
        try:
            described = client.describe_secret(SecretId=name)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "ResourceNotFoundException":
                problems.append(f"{var}: secret {name} does not exist (create it: docs/release.md, Add a variable)")
            elif code in ("AccessDeniedException", "AccessDenied"):
                problems.append(f"{var}: the deploy role may not describe {name}")
            else:
                problems.append(f"{var}: describe_secret({name}) failed: {code}")
            continue
        arn = described.get("ARN", "")
        parts = arn_parts(arn)
        if parts is None:
            problems.append(f"{var}: {name} did not resolve to a full secret ARN")
            continue
        if described.get("DeletedDate"):
            problems.append(f"{var}: secret {name} is scheduled for deletion")
            continue
        resolved = described.get("Name") or parts["name"]
        if resolved != parts["name"] or not env.secret_name_allowed(resolved):
            problems.append(f"{var}: {name} resolved to {resolved}, outside {env.secret_namespace}*")
            continue
        if parts["region"] != env.region:
            problems.append(f"{var}: {name} is in {parts['region']}, the service runs in {env.region}")
            continue
        arns[var] = arn
    return arns, problems


def fingerprint(value: str, salt: bytes) -> str:
    """A short salted fingerprint: equal values give equal fingerprints within one run, and nothing else.
    The salt is random per run, so a printed fingerprint can't be used to guess a low-entropy value later."""
    return hmac.new(salt, value.encode(), hashlib.sha256).hexdigest()[:10]


def database_host(url: str) -> str:
    """The host:port a DATABASE_URL points at (no user, no password)."""
    parts = urlsplit(url)
    return f"{(parts.hostname or '').lower()}:{parts.port or 5432}"
