"""What a hostile client tries at the HTTP surface: malformed numbers in the query and the path, and the headers
every answer carries (security headers, HSTS when deployed, no Host echoed in a redirect)."""

from __future__ import annotations

import pytest
from flask import Flask, redirect, request

from mv_os import create_app
from mv_os.headers import SecurityHeaders
from mv_os.settings import Environment
from tests.support.webhooks import fixture, signed_headers


@pytest.mark.parametrize(
    "query",
    [
        "page=999999999999999999999",
        "page=\u00b2",
        "page=\u0661",
        "per_page=\uff15",
        "page=0",
        "page=-1",
        "page=+1",
        "page=1.0",
        "page=%201",
        "page=",
        "per_page=101",
        "page=1000001",
    ],
)
def test_malformed_or_out_of_range_numbers_in_the_query_are_400_json(client, auth_headers, conversation, query):
    for path in ("/api/conversations", f"/api/conversations/{conversation}/messages"):
        response = client.get(f"{path}?{query}", headers=auth_headers)
        assert response.status_code == 400, (path, query)
        assert response.get_json()["error"]["code"] == "invalid_request"


def test_the_largest_accepted_page_is_an_empty_page(client, auth_headers):
    response = client.get("/api/conversations?page=1000000&per_page=100", headers=auth_headers)
    assert response.status_code == 200
    assert response.get_json()["items"] == []


@pytest.mark.parametrize("conversation_id", ["\u0661", "\uff11", "99999999999", "2147483648", "0", "00000000001"])
def test_a_path_id_that_is_not_a_plain_row_id_is_404_json(client, auth_headers, conversation, conversation_id):
    for method in ("get", "post"):
        response = getattr(client, method)(
            f"/api/conversations/{conversation_id}/messages", json={"text": "hi"}, headers=auth_headers
        )
        assert response.status_code == 404, (method, conversation_id)
        assert response.get_json()["error"]["code"] in ("not_found", "not_found_error")


def _answers(client, auth_headers):
    body = fixture("inbound_text.json")
    return {
        "api": client.get("/api/me", headers=auth_headers),
        "api 401": client.get("/api/me"),
        "404": client.get("/no/such/page"),
        "405": client.delete("/api/me"),
        "400": client.post("/api/auth/login", data="{", content_type="application/json"),
        "healthz": client.get("/healthz"),
        "handshake": client.get("/webhooks/whatsapp?hub.mode=subscribe&hub.challenge=1&hub.verify_token=x"),
        "webhook fast path": client.post("/webhooks/whatsapp", data=body, headers=signed_headers(body)),
        "webhook 401": client.post("/webhooks/whatsapp", data=body),
        "frontend": client.get("/config.json"),
    }


def test_every_answer_carries_the_security_headers(client, auth_headers):
    for name, response in _answers(client, auth_headers).items():
        assert response.headers.get("X-Content-Type-Options") == "nosniff", name
        assert "default-src" in response.headers.get("Content-Security-Policy", ""), name
        assert response.headers.get("X-Frame-Options") == "DENY", name
        assert "Strict-Transport-Security" not in response.headers, name  # local: plain HTTP on 127.0.0.1
    assert _answers(client, auth_headers)["api"].headers["Content-Security-Policy"].startswith("default-src 'none'")


@pytest.mark.parametrize("environment", [Environment.STAGING, Environment.PRODUCTION])
def test_deployed_environments_add_hsts_to_every_answer(settings, environment):
    app = create_app(settings.replace(environment=environment, jwt_secret="x" * 8 + "Q7v2Lx9pR3mT8wZ1abcdefgh"))
    client = app.test_client()
    for response in (client.get("/healthz"), client.get("/nope"), client.get("/webhooks/whatsapp")):
        assert response.headers["Strict-Transport-Security"].startswith("max-age=31536000")
        assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.unit
def test_a_redirect_never_sends_the_browser_to_the_clients_host_header():
    """werkzeug builds absolute redirects from the Host header (trailing-slash redirects, url_for(_external));
    the headers layer keeps only the path."""
    inner = Flask(__name__)

    @inner.get("/go")
    def go():
        return redirect(request.host_url + "next?x=1")

    client = SecurityHeaders(inner.wsgi_app, hsts=False)
    from werkzeug.test import Client

    response = Client(client).get("/go", headers={"Host": "evil.example"})
    assert response.status_code == 302
    assert response.headers["Location"] == "/next?x=1"
