"""The webhook receiver over real HTTP, against gunicorn (gunicorn.conf.py: 2 gevent workers, production's config).

Each test states one rule of the contract in ../../docs/messaging.md: handshake, size -> signature -> JSON
order, ingest of every entry/change/message/status/error, exactly once under concurrency, statuses never
going backwards, unknown things stored raw, durable before ack (DB down -> 503)."""

from __future__ import annotations

import hashlib
import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest
import requests

from mv_os import db
from mv_os.meta.signing import meta_json
from mv_os.models import Contact, Conversation
from tests.support.databases import outbound_message, rows, scalar, truncate_all, wait_processed
from tests.support.servers import DEMO_PASSWORD, LiveServer, backend_env, free_port
from tests.support.webhooks import LOCAL_VERIFY_TOKEN, fixture, signed_headers, status_payload

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(migrated_url):
    """One gunicorn for the module; its mock provider posts status webhooks back to itself."""
    live = LiveServer(backend_env(migrated_url, MOCK_STATUS_WEBHOOKS="1", MOCK_STATUS_DELAY="0.05"))
    live.env["PUBLIC_BASE_URL"] = live.url
    live.start()
    yield live
    live.kill()  # nothing graceful to check here


@pytest.fixture
def hook(server, migrated_url):
    """POST helper for the webhook URL; the database is emptied after each test."""
    url = server.url + "/webhooks/whatsapp"

    def post(body: bytes, headers: dict | None = None, wait: bool = True) -> requests.Response:
        """POST; after a 200, wait until the processor stored it (what a user sees in the inbox)."""
        response = requests.post(
            url, data=body, headers=signed_headers(body) if headers is None else headers, timeout=15
        )
        if wait and response.status_code == 200:
            wait_processed(migrated_url)
        return response

    post.url = url
    yield post
    truncate_all(migrated_url)


# ------------------------------------------------------------------------------------------ handshake


def test_handshake_echoes_the_challenge_as_plain_text(hook):
    params = {"hub.mode": "subscribe", "hub.verify_token": LOCAL_VERIFY_TOKEN, "hub.challenge": "1158201444"}
    response = requests.get(hook.url, params=params, timeout=5)
    assert response.status_code == 200
    assert response.text == "1158201444"
    assert response.headers["Content-Type"].startswith("text/plain")


@pytest.mark.parametrize(
    "params",
    [
        {"hub.mode": "subscribe", "hub.verify_token": "wrong-token", "hub.challenge": "1"},
        {"hub.mode": "unsubscribe", "hub.verify_token": LOCAL_VERIFY_TOKEN, "hub.challenge": "1"},
        {"hub.challenge": "1"},
    ],
    ids=["wrong-token", "wrong-mode", "nothing"],
)
def test_handshake_refuses_anything_else_with_403(hook, params):
    response = requests.get(hook.url, params=params, timeout=5)
    assert response.status_code == 403
    assert "1" not in response.text
    assert response.json()["error"]["code"] == "verification_failed"  # the JSON error shape, like every error


# ------------------------------------------------------------------------- size, signature, JSON order


def test_missing_signature_is_401_and_nothing_is_stored(hook, migrated_url):
    response = hook(fixture("inbound_text.json"), headers={"Content-Type": "application/json"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "signature_missing"
    assert scalar(migrated_url, "SELECT count(*) FROM webhook_payloads") == 0


def test_wrong_signature_is_403(hook, migrated_url):
    body = fixture("inbound_text.json")
    assert hook(body, headers=signed_headers(body, secret="another-secret")).status_code == 403
    # Signed bytes that differ from the sent bytes (re-serialized JSON): also refused.
    reserialized = json.dumps(json.loads(body)).encode()
    assert reserialized != body
    assert hook(reserialized, headers=signed_headers(body)).status_code == 403
    assert scalar(migrated_url, "SELECT count(*) FROM messages") == 0


def test_signature_is_checked_before_json(hook):
    assert hook(b"{not json", headers=signed_headers(b"something else")).status_code == 403
    assert hook(b"{not json").status_code == 400
    assert hook(b"[1, 2, 3]").status_code == 400
    assert hook('"caf\xe9"'.encode("latin-1")).status_code == 400


def test_a_body_over_the_limit_is_refused_with_413_before_it_is_sent(server, hook):
    """Only the headers go out: the answer comes back without the server waiting for 5 MiB of body."""
    host, port = urlsplit(server.url).hostname, urlsplit(server.url).port
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(
            b"POST /webhooks/whatsapp HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 5242880\r\n\r\n"
        )
        answer = sock.recv(4096).decode("latin-1")
    assert answer.startswith("HTTP/1.1 413")


def test_size_is_checked_before_the_signature(hook):
    body = b"x" * (4 * 1024 * 1024 + 1)
    try:
        response = hook(body, headers={"Content-Type": "application/json"})
    except requests.ConnectionError:  # the server may close before the client finished sending
        pytest.fail("the server should answer 413, not drop the connection")
    assert response.status_code == 413


def test_a_chunked_body_over_the_limit_is_413_not_cut_short(hook, migrated_url):
    """Without Content-Length the limit still holds; a small chunked body is read whole (signature matches)."""

    def chunks(data: bytes, size: int = 65536):
        for i in range(0, len(data), size):
            yield data[i : i + size]

    big = b" " * (4 * 1024 * 1024 + 10)
    response = hook(chunks(big), headers=signed_headers(big))
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert scalar(migrated_url, "SELECT count(*) FROM webhook_payloads") == 0
    body = fixture("inbound_text.json")
    assert hook(chunks(body, 100), headers=signed_headers(body)).status_code == 200


def test_a_payload_above_3_mb_is_accepted(hook, migrated_url):
    change = {"field": "message_template_components_update", "value": {"blob": "\u00e4" * 600_000}}
    body = meta_json({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [change]}]})
    assert 3_000_000 < len(body) < 4 * 1024 * 1024
    response = hook(body)
    assert response.status_code == 200, response.text
    assert scalar(migrated_url, "SELECT size FROM webhook_payloads") == len(body)


# ---------------------------------------------------------------------------------------------- ingest


def test_inbound_text_is_stored_with_contact_and_conversation(hook, migrated_url):
    body = fixture("inbound_text.json")
    response = hook(body)
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "duplicate": False, "payload_id": response.json()["payload_id"]}
    [(direction, text, mtype, status, wa_id, user_id, name, phone)] = rows(
        migrated_url,
        "SELECT m.direction, m.text, m.type, m.status, c.wa_id, c.user_id, c.profile_name, v.phone_number_id "
        "FROM messages m JOIN conversations v ON v.id = m.conversation_id JOIN contacts c ON c.id = v.contact_id",
    )
    # Meta's \u00fc escapes and \/ arrive as the real characters.
    assert text.startswith("Grüße! Gibt es das auch in Grün? https://example.com/p/42")
    assert (direction, mtype, status) == ("in", "text", "received")
    assert (wa_id, user_id, name, phone) == ("4915112345678", "DE.1502576394655843", "Jürgen Müller", "106540352242922")
    # The exact bytes are archived with their hash.
    [(digest, stored)] = rows(migrated_url, "SELECT sha256, body FROM webhook_payloads")
    assert digest == hashlib.sha256(body).hexdigest()
    assert bytes(stored) == body


def test_contact_without_wa_id_is_keyed_by_user_id(hook, migrated_url):
    assert hook(fixture("inbound_user_id_only.json")).status_code == 200
    [(wa_id, user_id, name, text)] = rows(
        migrated_url,
        "SELECT c.wa_id, c.user_id, c.profile_name, m.text FROM contacts c "
        "JOIN conversations v ON v.contact_id = c.id JOIN messages m ON m.conversation_id = v.id",
    )
    assert (wa_id, user_id, name, text) == (None, "BR.1502576394655843", "Maria López", "Olá, ainda tem?")
    # A later message from the same user_id lands in the same contact and conversation.
    again = fixture("inbound_user_id_only.json").replace(b"wamid.HBgUQlIu", b"wamid.HBgUQlIv")
    assert hook(again).status_code == 200
    assert scalar(migrated_url, "SELECT count(*) FROM contacts") == 1
    assert scalar(migrated_url, "SELECT count(*) FROM conversations") == 1
    assert scalar(migrated_url, "SELECT count(*) FROM messages") == 2


def test_media_reaction_and_unknown_types_are_all_kept(hook, migrated_url):
    for name in (
        "inbound_image_with_url.json",
        "inbound_image_without_url.json",
        "inbound_reaction.json",
        "inbound_unknown_type.json",
    ):
        assert hook(fixture(name)).status_code == 200, name
    stored = {r[0]: r[1:] for r in rows(migrated_url, "SELECT wamid, type, text, raw FROM messages")}
    by_type = {}
    for mtype, text, raw in stored.values():
        by_type.setdefault(mtype, []).append((text, raw))
    assert sorted(by_type) == ["hologram", "image", "reaction"]
    assert len(by_type["image"]) == 2
    urls = sorted("url" in raw["image"] for _, raw in by_type["image"])
    assert urls == [False, True]
    assert "Die Farbe meine ich" in [t for t, _ in by_type["image"]]
    assert by_type["reaction"][0][0] == "👍"
    [(text, raw)] = by_type["hologram"]
    assert text is None
    assert raw["hologram"] == {"id": "998877", "frames": 24, "label": "Vorschau \u2013 3D"}


def test_every_entry_change_and_message_of_a_batch_is_stored(hook, migrated_url):
    response = hook(fixture("batch_multi_entry.json"))
    assert response.status_code == 200
    texts = {r[0] for r in rows(migrated_url, "SELECT text FROM messages")}
    assert texts == {"primeira", "segunda", "terceira", "ça marche?", "merci"}
    assert rows(migrated_url, "SELECT DISTINCT phone_number_id FROM conversations ORDER BY 1") == [
        ("106540352242922",),
        ("106540352242923",),
    ]
    assert scalar(migrated_url, "SELECT count(*) FROM conversations") == 3
    assert scalar(migrated_url, "SELECT status FROM message_status_events") == "delivered"


def test_errors_only_and_unknown_fields_are_stored_raw_with_200(hook, migrated_url):
    assert hook(fixture("errors_only.json")).status_code == 200
    assert hook(fixture("unknown_field_account_update.json")).status_code == 200
    events = rows(migrated_url, "SELECT kind, field, error_code, error_title, raw FROM webhook_events ORDER BY id")
    assert [(e[0], e[1], e[2], e[3]) for e in events] == [
        ("error", "errors", "131051", "Message type unknown"),
        ("unknown_field", "account_update", None, None),
    ]
    assert events[1][4]["value"] == {"phone_number": "15550783881", "event": "VERIFIED_ACCOUNT"}


def test_dashboard_test_sample_is_accepted(hook, migrated_url):
    assert hook(fixture("dashboard_test_sample.json")).status_code == 200
    assert scalar(migrated_url, "SELECT text FROM messages WHERE wamid = 'ABGGFlA5Fpa'") == "this is a text message"
    # The same sample unwrapped, as the dashboard displays it ({"field", "value"} only), is one change too.
    change = json.loads(fixture("dashboard_test_sample.json"))["entry"][0]["changes"][0]
    change["value"]["messages"][0]["id"] = "ABGGFlA5Fpb"
    assert hook(meta_json(change)).status_code == 200
    assert scalar(migrated_url, "SELECT count(*) FROM messages WHERE wamid LIKE 'ABGGFlA5Fp_'") == 2


# ------------------------------------------------------------------------------------------ exactly once


def test_twenty_parallel_duplicate_deliveries_store_one_message(hook, migrated_url):
    body = fixture("inbound_text.json")
    with ThreadPoolExecutor(max_workers=20) as pool:
        codes = list(pool.map(lambda _: hook(body).status_code, range(20)))
    assert codes == [200] * 20
    assert scalar(migrated_url, "SELECT count(*) FROM messages") == 1
    assert scalar(migrated_url, "SELECT count(*) FROM contacts") == 1
    assert rows(migrated_url, "SELECT count(*), sum(deliveries) FROM webhook_payloads") == [(1, 20)]
    # Items without an id of their own (errors[]) are deduplicated by the payload's hash.
    errors = fixture("errors_only.json")
    with ThreadPoolExecutor(max_workers=5) as pool:
        assert set(pool.map(lambda _: hook(errors).status_code, range(5))) == {200}
    assert scalar(migrated_url, "SELECT count(*) FROM webhook_events WHERE kind = 'error'") == 1


def test_same_message_in_different_bytes_is_stored_once(hook, migrated_url):
    body = fixture("inbound_text.json")
    other_bytes = body.replace(b'"id":"102290129340398"', b'"id":"102290129340398","time":1764080001')
    assert other_bytes != body
    with ThreadPoolExecutor(max_workers=10) as pool:
        codes = list(pool.map(lambda b: hook(b).status_code, [body, other_bytes] * 5))
    assert codes == [200] * 10
    assert scalar(migrated_url, "SELECT count(*) FROM messages") == 1
    assert scalar(migrated_url, "SELECT count(*) FROM webhook_payloads") == 2


# ---------------------------------------------------------------------------------------------- statuses


def test_read_before_delivered_keeps_read(hook, migrated_url):
    wamid = "wamid.HBgNNDkxNTExMjM0NTY3OBUCABEYEkQ4RjNBQjc2QzQxMDlFMkE1MQA="
    outbound_message(migrated_url, wamid)
    assert hook(fixture("status_out_of_order_1_read.json")).status_code == 200
    assert hook(fixture("status_out_of_order_2_delivered.json")).status_code == 200
    assert scalar(migrated_url, "SELECT status FROM messages WHERE wamid = %s", (wamid,)) == "read"
    events = rows(migrated_url, "SELECT status FROM message_status_events WHERE wamid = %s ORDER BY 1", (wamid,))
    assert events == [("delivered",), ("read",)]


def test_sent_delivered_read_move_forward_and_failed_keeps_its_code(hook, migrated_url):
    wamid = "wamid.HBgNNDkxNTExMjM0NTY3OBUCABEYEjQyMzY0NTRGRTk5MkYxMkYwQwA="
    outbound_message(migrated_url, wamid)
    seen = []
    for name in ("status_1_sent.json", "status_2_delivered.json", "status_3_read.json"):
        assert hook(fixture(name)).status_code == 200
        seen.append(scalar(migrated_url, "SELECT status FROM messages WHERE wamid = %s", (wamid,)))
    assert seen == ["sent", "delivered", "read"]

    failed = "wamid.HBgNNDkxNTExMjM0NTY3OBUCABEYEjdEMkFCMjE5RkY0RTkwQTM4NQA="
    outbound_message(migrated_url, failed)
    assert hook(status_payload(failed, "sent")).status_code == 200
    assert hook(fixture("status_4_failed.json")).status_code == 200
    assert hook(status_payload(failed, "delivered", 1764080700)).status_code == 200  # late, after failed
    assert rows(migrated_url, "SELECT status, error_code, error_title FROM messages WHERE wamid = %s", (failed,)) == [
        (
            "failed",
            "131047",
            "Re-engagement message: Message failed to send because more than 24 hours have passed since the "
            "customer last replied to this number.",
        )
    ]


def test_concurrent_receipts_in_any_order_end_at_the_highest(hook, migrated_url):
    """Receipts for many messages arrive in parallel and shuffled; each message ends at its highest status."""
    wamids = [f"wamid.parallel.{i}" for i in range(8)]
    for wamid in wamids:
        outbound_message(migrated_url, wamid)
    bodies = [status_payload(w, s) for w in wamids for s in ("read", "sent", "delivered", "read")]
    bodies += [status_payload(wamids[0], "failed", errors=[{"code": 131026, "title": "Message undeliverable"}])]
    with ThreadPoolExecutor(max_workers=12) as pool:
        codes = list(pool.map(lambda b: hook(b).status_code, bodies[::-1]))
    assert set(codes) == {200}
    final = dict(rows(migrated_url, "SELECT wamid, status FROM messages WHERE wamid LIKE 'wamid.parallel.%%'"))
    assert final == {w: ("failed" if w == wamids[0] else "read") for w in wamids}


def test_duplicate_status_is_stored_once(hook, migrated_url):
    wamid = "wamid.dup-status"
    outbound_message(migrated_url, wamid)
    for ts in (1764080500, 1764080501, 1764080502):  # three different bodies, same (wamid, status)
        assert hook(status_payload(wamid, "delivered", ts)).status_code == 200
    assert scalar(migrated_url, "SELECT count(*) FROM message_status_events WHERE wamid = %s", (wamid,)) == 1


# ------------------------------------------------------------------------------------ durable before ack


def test_database_unavailable_answers_503_so_meta_retries(migrated_url):
    dead = f"postgresql://postgres:postgres@127.0.0.1:{free_port()}/mv_os"
    server = LiveServer(backend_env(dead, WEB_CONCURRENCY="1")).start()  # two requests, one after the other
    try:
        body = fixture("inbound_text.json")
        response = requests.post(server.url + "/webhooks/whatsapp", data=body, headers=signed_headers(body), timeout=15)
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "database_unavailable"
        # The handshake needs no database.
        params = {"hub.mode": "subscribe", "hub.verify_token": LOCAL_VERIFY_TOKEN, "hub.challenge": "42"}
        assert requests.get(server.url + "/webhooks/whatsapp", params=params, timeout=5).text == "42"
    finally:
        log = server.kill()
    assert "postgres:postgres@" not in log  # the URL's password never reaches the log


# ------------------------------------------------------------------------- the mock's own status webhooks


def test_local_mock_delivers_signed_status_webhooks_back_through_gunicorn(server, hook, app, user):
    """MOCK_STATUS_WEBHOOKS=1: after a send, the mock posts signed sent -> delivered -> read webhooks to
    PUBLIC_BASE_URL/webhooks/whatsapp over HTTP, and the ordinary handler moves the message to `read`."""
    with app.app_context(), db.database.connection_context():
        contact = Contact.create(wa_id="4915112345678", profile_name="J\u00fcrgen")
        conversation = Conversation.create(phone_number_id="106540352242922", contact=contact).id
    login = requests.post(
        server.url + "/api/auth/login", json={"email": user.email, "password": DEMO_PASSWORD}, timeout=10
    )
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    messages_url = f"{server.url}/api/conversations/{conversation}/messages"
    created = requests.post(messages_url, json={"text": "ping"}, headers=headers, timeout=10)
    assert created.status_code == 201
    wamid = created.json()["wamid"]
    statuses = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        page = requests.get(messages_url, headers=headers, timeout=10).json()
        status = next(m["status"] for m in page["items"] if m["wamid"] == wamid)
        if not statuses or statuses[-1] != status:
            statuses.append(status)
        if status == "read":
            break
        time.sleep(0.05)
    assert statuses[-1] == "read", statuses
    assert set(statuses) <= {"accepted", "sent", "delivered", "read"}
    # They came in as three signed webhook deliveries, archived like Meta's.
    assert scalar(settings_url(app), "SELECT count(*) FROM message_status_events WHERE wamid = %s", (wamid,)) == 3


def settings_url(app) -> str:
    return app.config["SETTINGS"].database_url
