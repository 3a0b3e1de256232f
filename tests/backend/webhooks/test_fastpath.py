"""The webhook fast path (`webhooks/fastpath.py`) answers exactly like the Flask route it stands in front of.

Each case is sent twice on a real PostgreSQL: once through the app as gunicorn calls it (fast path first), once
straight to Flask's own WSGI callable (what the fast path hands on).  Status line, headers and body bytes must
be the same (payload ids aside, which come from a sequence), and so must the access line and what is stored."""

from __future__ import annotations

import io
import json
import logging

import pytest
from werkzeug.test import Client, EnvironBuilder, TestResponse, run_wsgi_app
from werkzeug.wrappers import Request

from mv_os import create_app
from mv_os.headers import SecurityHeaders
from mv_os.webhooks import intake
from mv_os.webhooks.fastpath import WebhookFastPath
from tests.support.databases import scalar, truncate_all
from tests.support.servers import free_port
from tests.support.webhooks import fixture, signed_headers

URL = "/webhooks/whatsapp"
BODY = fixture("inbound_text.json")


def both(app):
    """(through the fast path, straight to Flask), both behind the same security headers layer."""
    assert isinstance(app.wsgi_app, SecurityHeaders) and isinstance(app.wsgi_app.wsgi_app, WebhookFastPath)
    return Client(app), Client(SecurityHeaders(app.wsgi_app.wsgi_app.wsgi_app, hsts=False))


def answer(response) -> tuple:
    body = response.get_data()
    if response.status_code == 200:
        parsed = json.loads(body)
        body = json.dumps({**parsed, "payload_id": "N"}).encode() + b"|" + str(type(parsed["payload_id"])).encode()
    headers = {k: v for k, v in response.headers.items() if k != "X-Request-Id"}
    return response.status, headers, body


CASES = {
    "accepted": (BODY, signed_headers(BODY)),
    "signature missing": (BODY, {"Content-Type": "application/json"}),
    "signature wrong": (BODY, signed_headers(BODY, "another-secret")),
    "signature malformed": (BODY, {"X-Hub-Signature-256": "sha256=\u00e4\u00f6"}),
    "not JSON": (b"{not json", signed_headers(b"{not json")),
    "not an object": (b"[1, 2]", signed_headers(b"[1, 2]")),
    "empty body": (b"", signed_headers(b"")),
}


@pytest.mark.parametrize("case", CASES)
def test_both_paths_give_the_same_answer_log_line_and_archive(app, migrated_url, case, caplog):
    body, headers = CASES[case]
    fast, flask = both(app)
    answers, lines, stored = [], [], []
    for client in (fast, flask):
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="mv_os"):
            response = client.post(URL, data=body, headers={**headers, "X-Request-Id": "req-7"})
        answers.append(answer(response))
        assert response.headers["X-Request-Id"] == "req-7"
        lines.append([(r.name, r.levelname, r.getMessage().rsplit(" ", 1)[0]) for r in caplog.records])
        stored.append(scalar(migrated_url, "SELECT count(*) FROM webhook_payloads"))
        truncate_all(migrated_url)
    assert answers[0] == answers[1]
    assert lines[0] == lines[1]
    # One access line each; an accepted delivery's is DEBUG (the archive row and the processor's batch line record
    # it), a refused one's INFO.
    level = "DEBUG" if case == "accepted" else "INFO"
    assert [line for line in lines[0] if line[0] == "mv_os.access"] == [
        ("mv_os.access", level, f"POST {URL} {answers[0][0][:3]}")
    ]
    assert stored[0] == stored[1] == (1 if case == "accepted" else 0)


def test_the_accepted_answer_is_what_the_api_documents(app, migrated_url):
    fast, _ = both(app)
    first = fast.post(URL, data=BODY, headers=signed_headers(BODY))
    again = fast.post(URL, data=BODY, headers=signed_headers(BODY))
    assert first.status == "200 OK" and first.content_type == "application/json"
    assert first.get_data().endswith(b"\n")
    assert first.json == {"status": "ok", "duplicate": False, "payload_id": first.json["payload_id"]}
    assert again.json == {"status": "ok", "duplicate": True, "payload_id": first.json["payload_id"]}
    made = first.headers["X-Request-Id"]
    assert len(made) == 32 and made != again.headers["X-Request-Id"]
    assert fast.post(URL, data=BODY, headers={**signed_headers(BODY), "X-Request-Id": "bad id"}).headers[
        "X-Request-Id"
    ] not in ("bad id", "")
    assert scalar(migrated_url, "SELECT deliveries FROM webhook_payloads") == 3


def test_a_database_outage_is_the_same_503_on_both_paths(settings, caplog):
    dead = settings.replace(database_url=f"postgresql://postgres:hunter2@127.0.0.1:{free_port()}/mv_os")
    app = create_app(dead)
    fast, flask = both(app)
    answers = []
    for client in (fast, flask):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="mv_os"):
            answers.append(answer(client.post(URL, data=BODY, headers=signed_headers(BODY))))
        assert [r.getMessage() for r in caplog.records if r.name == "mv_os.errors"] == [
            "database unavailable: OperationalError"
        ]
        assert "hunter2" not in caplog.text
    assert answers[0] == answers[1]
    assert answers[0][0] == "503 SERVICE UNAVAILABLE"
    assert json.loads(answers[0][2])["error"]["code"] == "database_unavailable"
    intake._shared.close()


def test_an_unexpected_error_is_the_same_500_on_both_paths(app, monkeypatch, caplog):
    def broken(body: bytes):
        raise RuntimeError("secret detail: hunter2")

    monkeypatch.setattr(intake, "archive", broken)
    fast, flask = both(app)
    answers = [answer(client.post(URL, data=BODY, headers=signed_headers(BODY))) for client in (fast, flask)]
    assert answers[0] == answers[1]
    assert answers[0][0] == "500 INTERNAL SERVER ERROR"
    assert b"hunter2" not in answers[0][2]
    assert [r.getMessage() for r in caplog.records if r.name == "mv_os.errors"] == ["unhandled error: RuntimeError"] * 2


def test_what_the_fast_path_does_not_take_goes_to_flask(app, migrated_url):
    fast, _ = both(app)

    def post(body: bytes, environ: dict, headers: dict | None = None):
        builder = EnvironBuilder(URL, method="POST", headers=headers or signed_headers(BODY))
        env = builder.get_environ()
        env.pop("CONTENT_LENGTH", None)
        env.update({"wsgi.input": io.BytesIO(body), **environ})
        return TestResponse(*run_wsgi_app(app, env, buffered=True), request=Request(env))

    # A chunked body (no Content-Length; gunicorn marks the stream as terminated): Flask streams it, accepts it.
    chunked = post(BODY, {"wsgi.input_terminated": True})
    assert chunked.status_code == 200, chunked.get_data()
    assert scalar(migrated_url, "SELECT count(*) FROM webhook_payloads") == 1
    # Declared over the limit: 413 from Flask, before anything is read.
    too_large = post(b"{}", {"CONTENT_LENGTH": str(app.config["MAX_CONTENT_LENGTH"] + 1)})
    assert too_large.status_code == 413 and too_large.json["error"]["code"] == "payload_too_large"
    # Cut short by the client: werkzeug's 400, as without the fast path.
    short = post(BODY[:10], {"CONTENT_LENGTH": str(len(BODY))})
    assert short.status_code == 400 and short.json["error"]["code"] == "bad_request"
    # Other methods and paths are Flask's.
    assert fast.put(URL).status_code == 405 and fast.put(URL).json["error"]["code"] == "method_not_allowed"
    assert fast.post(URL + "/").status_code == 404
    assert scalar(migrated_url, "SELECT count(*) FROM webhook_payloads") == 1
