"""Fixtures shared by the GitHub API tests: a real local HTTP server that plays GitHub's REST API."""

from __future__ import annotations

import re

import pytest

from tests.support.fake_github import TOKEN, FakeGitHub

ALL = re.compile(r"^/.*$")


@pytest.fixture
def github(httpserver):
    fake = FakeGitHub()
    httpserver.expect_request(ALL).respond_with_handler(fake.handle)
    return fake


@pytest.fixture
def env(httpserver):
    return {
        "GITHUB_TOKEN": TOKEN,
        "GITHUB_API_URL": httpserver.url_for("").rstrip("/"),
        "GITHUB_REPOSITORY": "acme/mv-os",
    }
