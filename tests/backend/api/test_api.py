"""HTTP API: conversations and messages (order, pagination), JSON errors everywhere, /version, OpenAPI."""

from __future__ import annotations

import datetime as dt

import pytest
from werkzeug.routing import Rule

from mv_os import create_app
from mv_os.models import Contact, Conversation, Message

T0 = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def inbox(app):
    """Three conversations; the middle one has the newest message."""
    with app.app_context():
        made = []
        for i, name in enumerate(["Ana", "Bruno", ""]):
            contact = Contact.create(wa_id=f"5511900000{i:03d}", profile_name=name)
            conv = Conversation.create(
                phone_number_id="106540352242922",
                contact=contact,
                last_message_at=T0 + dt.timedelta(minutes=[1, 30, 5][i]),
            )
            for j in range(3):
                Message.create(
                    conversation=conv,
                    direction="in" if j % 2 == 0 else "out",
                    wamid=f"wamid.{i}.{j}",
                    text=f"msg {i}.{j}",
                    status="delivered",
                    sent_at=T0 + dt.timedelta(minutes=j),
                )
            made.append(conv.id)
        return made


def test_conversations_newest_first_with_contact_and_last_message(client, auth_headers, inbox):
    body = client.get("/api/conversations", headers=auth_headers).get_json()
    assert [c["id"] for c in body["items"]] == [inbox[1], inbox[2], inbox[0]]
    first = body["items"][0]
    assert first["contact"]["profile_name"] == "Bruno"
    assert first["last_message"]["text"] == "msg 1.2"
    assert body["items"][1]["contact"]["label"] == "5511900000002"  # no name: the number
    assert body["has_more"] is False


def test_conversations_paginate(client, auth_headers, inbox):
    page1 = client.get("/api/conversations?per_page=2", headers=auth_headers).get_json()
    page2 = client.get("/api/conversations?per_page=2&page=2", headers=auth_headers).get_json()
    assert page1["has_more"] is True
    assert page2["has_more"] is False
    assert [c["id"] for c in page1["items"] + page2["items"]] == [inbox[1], inbox[2], inbox[0]]


def test_messages_newest_first_and_paginated(client, auth_headers, inbox):
    url = f"/api/conversations/{inbox[0]}/messages"
    page1 = client.get(url + "?per_page=2", headers=auth_headers).get_json()
    assert [m["text"] for m in page1["items"]] == ["msg 0.2", "msg 0.1"]
    assert page1["has_more"] is True
    page2 = client.get(url + "?per_page=2&page=2", headers=auth_headers).get_json()
    assert [m["text"] for m in page2["items"]] == ["msg 0.0"]
    assert page2["items"][0]["direction"] == "in"


def test_unknown_conversation_is_a_json_404(client, auth_headers):
    response = client.get("/api/conversations/424242/messages", headers=auth_headers)
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("query", ["page=0", "per_page=101", "page=abc", "per_page=-1"])
def test_bad_pagination_is_400(client, auth_headers, query):
    response = client.get(f"/api/conversations?{query}", headers=auth_headers)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_request"


def test_conversations_need_auth(client):
    assert client.get("/api/conversations").status_code == 401


def test_404_and_405_are_json(client):
    missing = client.get("/no/such/page")
    assert missing.status_code == 404
    assert missing.is_json
    assert set(missing.get_json()["error"]) == {"code", "message"}
    wrong_method = client.delete("/healthz")
    assert wrong_method.status_code == 405
    assert wrong_method.get_json()["error"]["code"] == "method_not_allowed"
    assert "GET" in wrong_method.headers["Allow"]


def test_unhandled_error_is_json_without_trace_or_secret(settings):
    app = create_app(settings)

    @app.get("/boom")
    def boom():
        raise RuntimeError(f"exploded with {settings.jwt_secret} and {settings.database_url}")

    response = app.test_client().get("/boom")
    assert response.status_code == 500
    assert response.get_json() == {"error": {"code": "internal_error", "message": "Something went wrong on our side."}}
    text = response.get_data(as_text=True)
    assert "Traceback" not in text
    assert settings.jwt_secret not in text


def test_database_down_is_a_json_503(settings, user):
    app = create_app(settings.replace(database_url="postgresql://postgres@127.0.0.1:1/x?connect_timeout=1"))
    response = app.test_client().post("/api/auth/login", json={"email": "a@b.c", "password": "x"})
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "database_unavailable"


def test_version_reports_environment_sha_and_digest(settings):
    app = create_app(settings.replace(git_sha="abc1234", image_digest="sha256:" + "f" * 64))
    assert app.test_client().get("/version").get_json() == {
        "environment": "local",
        "git_sha": "abc1234",
        "image_digest": "sha256:" + "f" * 64,
    }


def test_request_id_is_echoed_or_made(client):
    assert client.get("/healthz", headers={"X-Request-Id": "abc-123"}).headers["X-Request-Id"] == "abc-123"
    made = client.get("/healthz", headers={"X-Request-Id": "bad id with spaces"}).headers["X-Request-Id"]
    assert len(made) == 32


def _openapi_path(rule: Rule) -> str:
    path = rule.rule
    for arg in rule.arguments:
        path = (
            path.replace(f"<int:{arg}>", "{" + arg + "}")
            .replace(f"<id:{arg}>", "{" + arg + "}")
            .replace(f"<path:{arg}>", "{" + arg + "}")
        )
        path = path.replace(f"<{arg}>", "{" + arg + "}")
    return path


def test_every_route_is_in_the_openapi_document(app, client):
    spec = client.get("/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    documented = {(path, method.upper()) for path, ops in spec["paths"].items() for method in ops}
    served = {
        (_openapi_path(rule), method)
        for rule in app.url_map.iter_rules()
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert served - documented == set(), "routes missing from openapi.json"
    assert documented - served == set(), "openapi.json documents routes that do not exist"


def test_an_exhausted_connection_pool_is_a_json_503(settings, user):
    from mv_os import db

    app = create_app(settings.replace(db_max_connections=1))
    db.database.obj._wait_timeout = 0.2  # seconds to wait for a free connection (production: 10)
    held = db.database.obj.connection()  # this thread holds the only connection

    import threading

    result = {}

    def login():
        result["response"] = app.test_client().post("/api/auth/login", json={"email": user.email, "password": "x"})

    thread = threading.Thread(target=login)
    thread.start()
    thread.join(10)
    assert held is not None
    response = result["response"]
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "database_unavailable"
    db.database.obj.close()
