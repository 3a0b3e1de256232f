"""Smoke checks against a running service (App Runner URL, or a local gunicorn in tests).

What a user would notice first: the process answers, the database is ready, the right build runs in the
right environment, and the two doors that must stay shut are shut (webhook handshake with a wrong verify
token, API call with a garbage bearer token)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

import requests

from scripts.release.gates import Result
from scripts.release.images import DIGEST


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


def run(
    base_url: str,
    environment: str,
    digest: str | None,
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
    return results
