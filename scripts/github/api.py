"""A small GitHub REST client: one place for the host, the token, the API version, timeouts and errors."""

from __future__ import annotations

import os
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

DEFAULT_API_URL = "https://api.github.com"
API_VERSION = "2022-11-28"
TIMEOUT_SECONDS = 20
# Idempotent calls are tried again after a dropped connection or a 502/503/504 (GitHub's own advice for its
# transient errors); POST and PATCH never are, so nothing is created twice.
RETRY = Retry(
    total=3,
    connect=3,
    read=2,
    status=2,
    backoff_factor=0.2,
    status_forcelist=(502, 503, 504),
    allowed_methods=frozenset({"GET", "HEAD", "PUT", "DELETE"}),
    raise_on_status=False,
)


class GitHubError(RuntimeError):
    """An API call failed; the message names the call and GitHub's reason, never the token."""

    def __init__(self, method: str, path: str, status: int, reason: str) -> None:
        super().__init__(f"{method} {path}: HTTP {status}: {reason}")
        self.status = status


def token_from_env(env: dict[str, str] | None = None) -> str | None:
    env = os.environ if env is None else env
    return env.get("GITHUB_TOKEN") or env.get("GH_TOKEN") or None


class GitHub:
    def __init__(self, repo: str, token: str | None, api_url: str | None = None, *, timeout: float = TIMEOUT_SECONDS):
        owner, sep, name = repo.partition("/")
        if not sep or not owner or not name or "/" in name:
            raise ValueError(f"repository must be OWNER/NAME, got {repo!r}")
        self.repo, self.owner = repo, owner
        self.api_url = (api_url or os.environ.get("GITHUB_API_URL") or DEFAULT_API_URL).rstrip("/")
        self.timeout = timeout
        self.http = requests.Session()
        self.http.mount("https://", HTTPAdapter(max_retries=RETRY))
        self.http.mount("http://", HTTPAdapter(max_retries=RETRY))
        self.http.headers.update({"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": API_VERSION})
        if token:
            self.http.headers["Authorization"] = f"Bearer {token}"

    def request(self, method: str, path: str, *, json: Any = None, params: dict | None = None, ok=(200,)) -> Any:
        """Call `path` (relative to the API root); None for 404 on GET (absent), GitHubError otherwise."""
        url = f"{self.api_url}{path}"
        try:
            resp = self.http.request(method, url, json=json, params=params, timeout=self.timeout)
        except requests.RequestException as exc:
            raise GitHubError(method, path, 0, f"{type(exc).__name__}: cannot reach {self.api_url}") from None
        if resp.status_code in ok:
            return resp.json() if resp.content else None
        if resp.status_code == 404 and method == "GET":
            return None
        try:
            reason = resp.json().get("message") or resp.reason
        except ValueError:
            reason = resp.reason
        raise GitHubError(method, path, resp.status_code, str(reason))

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params or None)

    def repo_path(self, suffix: str) -> str:
        return f"/repos/{self.repo}{suffix}"
