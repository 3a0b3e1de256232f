"""Smoke checks against a running service (App Runner URL, or a local gunicorn in tests).

What a user would notice first: the process answers, the database is ready, the right build runs in the
right environment, and the two doors that must stay shut are shut (webhook handshake with a wrong verify
token, API call with a garbage bearer token).  Where the environment has a smoke user (staging), it also logs in
and logs out: logout ends the user's sessions with a database write, and a later request with the same token must
be refused, which only happens once that write is committed."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import requests
from botocore.exceptions import BotoCoreError, ClientError

from scripts.release.environments import Environment
from scripts.release.gates import Result, aws_error
from scripts.release.images import DIGEST

EMAIL_VARIABLE, PASSWORD_VARIABLE = "SMOKE_USER_EMAIL", "SMOKE_USER_PASSWORD"  # pragma: allowlist secret (names)


def _status(expected: int):
    def check(response: requests.Response) -> str | None:
        if response.status_code != expected:
            return f"expected {expected}, got {response.status_code}"
        return None

    return check


def _version(environment: str, digest: str | None):
    def check(response: requests.Response) -> str | None:
        if response.status_code != 200:
            return f"expected 200, got {response.status_code}"
        try:
            body = response.json()
        except ValueError:
            return "answered with something that is not JSON"
        if body.get("environment") != environment:
            return f"reports environment {body.get('environment')!r}, expected {environment!r}"
        running = str(body.get("image_digest"))
        if digest is not None and running != digest:
            return f"reports image digest {running}, expected {digest}"
        if digest is None and not DIGEST.fullmatch(running):
            return f"reports image digest {running!r}, not a sha256 digest"
        return None

    return check


def _handshake_refused(challenge: str):
    def check(response: requests.Response) -> str | None:
        if response.status_code != 403:
            return f"a wrong verify token got {response.status_code}, expected 403"
        if challenge in response.text:
            return "a wrong verify token got the challenge echoed back"
        return None

    return check


@dataclass(frozen=True)
class Login:
    """The smoke user's credentials (`password` from Secrets Manager; never printed)."""

    email: str
    password: str = field(repr=False)


def login_for(env: Environment, secretsmanager) -> Login | Result | None:
    """The environment's smoke login: None where it has no smoke user, a failed Result if its password cannot
    be read (the deploy and record roles may read that one secret, nothing else)."""
    name = env.secrets.get(PASSWORD_VARIABLE)
    if name is None:
        return None
    email = env.variables.get(EMAIL_VARIABLE, "")
    if secretsmanager is None:
        return Result("login", False, f"reading {name} needs AWS credentials")
    try:
        password = secretsmanager.get_secret_value(SecretId=name)["SecretString"]
    except (BotoCoreError, ClientError) as exc:
        return Result("login", False, f"cannot read the smoke user's password from {name} ({aws_error(exc)})")
    return Login(email, password)


def _login_checks(http: requests.Session, base: str, login: Login, timeout: float) -> list[Result]:
    """Log in, see /api/me, log out, then the same token must be refused: the logout's write was committed."""
    url = base + "/api"
    try:
        answer = http.post(
            f"{url}/auth/login", json={"email": login.email, "password": login.password}, timeout=timeout
        )
        if answer.status_code != 200:
            return [Result("login", False, f"{login.email} got {answer.status_code}, expected 200")]
        bearer = {"Authorization": f"Bearer {answer.json().get('access_token', '')}"}
        me = http.get(f"{url}/me", headers=bearer, timeout=timeout)
        if me.status_code != 200 or me.json().get("email") != login.email:
            return [Result("login", False, f"/api/me with the new token got {me.status_code}, expected 200")]
        out = http.post(f"{url}/auth/logout", headers=bearer, timeout=timeout)
        after = http.get(f"{url}/me", headers=bearer, timeout=timeout)
    except (requests.RequestException, ValueError) as exc:
        return [Result("login", False, f"{url} did not answer as the API does ({type(exc).__name__})")]
    results = [Result("login", True, "")]
    if out.status_code != 204:
        return [*results, Result("db-write", False, f"logout got {out.status_code}, expected 204")]
    if after.status_code != 401:
        return [*results, Result("db-write", False, f"the token still works after logout ({after.status_code})")]
    return [*results, Result("db-write", True, "")]


def run(
    base_url: str,
    environment: str,
    digest: str | None,
    login: Login | Result | None = None,
    *,
    timeout: float = 10.0,
    attempts: int = 3,
    sleep: Callable[[float], None] = time.sleep,
    session: requests.Session | None = None,
) -> list[Result]:
    """Run every check (each retried up to `attempts` times, for a service that just came up)."""
    http = session or requests.Session()
    base = base_url.rstrip("/")
    challenge = secrets.token_hex(8)
    checks: list[tuple[str, str, dict, Callable[[requests.Response], str | None]]] = [
        ("healthz", "/healthz", {}, _status(200)),
        ("readyz", "/readyz", {}, _status(200)),
        ("version", "/version", {}, _version(environment, digest)),
        (
            "webhook-wrong-verify-token",
            "/webhooks/whatsapp",
            {
                "params": {
                    "hub.mode": "subscribe",
                    "hub.verify_token": "smoke-wrong-" + secrets.token_hex(8),
                    "hub.challenge": challenge,
                }
            },
            _handshake_refused(challenge),
        ),
        (
            "garbage-bearer-token",
            "/api/me",
            {"headers": {"Authorization": "Bearer smoke.not-a.jwt"}},
            _status(401),
        ),
    ]
    results = []
    for name, path, kwargs, verdict in checks:
        problem = "not run"
        for attempt in range(1, attempts + 1):
            try:
                response = http.get(base + path, timeout=timeout, allow_redirects=False, **kwargs)
                problem = verdict(response)
            except requests.RequestException as exc:
                problem = f"{base}{path} did not answer ({type(exc).__name__})"
            if problem is None or attempt == attempts:
                break
            sleep(2.0)
        results.append(Result(name, problem is None, problem or ""))
    if isinstance(login, Result):
        results.append(login)
    elif login is not None:
        results += _login_checks(http, base, login, timeout)
    return results
