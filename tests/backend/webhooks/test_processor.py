"""The webhook path split in two (docs/messaging.md, "Intake and processing"): the request path archives the
exact bytes with a group commit and answers 200 after that commit; the processor stores the messages behind it.

- concurrent requests share commits, and each still gets its own payload id and the right duplicate flag;
- a payload archived while nothing processed it (a crash, a deploy) is processed when a server starts;
- a payload that cannot be processed does not block the others and is kept with its error;
- the processor never stores a payload twice, even with several processors draining the same queue."""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from mv_os.webhooks import intake, processor
from tests.support.databases import outbound_message, rows, scalar, truncate_all, wait_processed
from tests.support.load import make_delivery, stored_wamids
from tests.support.servers import LiveServer, backend_env
from tests.support.webhooks import fixture, status_payload


def queue_raw(url: str, *bodies: bytes, age_s: int = 0, processed_default: bool = False) -> None:
    """Put bodies in the archive directly, as the intake does (processed_at NULL: queued), or as the previous,
    synchronous version does (`processed_default`: the column is not named, so its default applies)."""
    columns = "sha256, body, size, deliveries, first_received_at, last_received_at"
    values = "%s, %s, %s, 1, now() - make_interval(secs => %s), now()"
    if not processed_default:
        columns, values = columns + ", processed_at", values + ", NULL"
    with psycopg.connect(url, autocommit=True) as conn:
        for body in bodies:
            conn.execute(
                f"INSERT INTO webhook_payloads ({columns}) VALUES ({values})",  # noqa: S608 - fixed column lists
                (hashlib.sha256(body).hexdigest(), body, len(body), age_s),
            )


@pytest.mark.parametrize("max_group", [64, 4], ids=["one-group-fits-all", "groups-of-at-most-4"])
def test_concurrent_bodies_share_commits_and_each_gets_its_own_answer(app, settings, monkeypatch, max_group):
    monkeypatch.setattr(intake, "MAX_GROUP", max_group)
    deliveries = [make_delivery("group", w, 0) for w in range(24)]
    bodies = [d.body for d in deliveries] + [deliveries[0].body] * 4  # four re-deliveries of the first body
    start = threading.Barrier(len(bodies))
    groups_before, bodies_before = intake.statistics()

    def archive(body: bytes) -> intake.Archived:
        start.wait()
        with app.app_context():
            return intake.archive(body)

    with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
        results = list(pool.map(archive, bodies))
    groups, archived = (a - b for a, b in zip(intake.statistics(), (groups_before, bodies_before), strict=True))
    assert archived == len(bodies)
    assert groups < len(bodies), "28 simultaneous bodies were written in 28 separate commits"
    assert groups >= len(bodies) / max_group
    # One row per distinct body; the first body counted five deliveries and was new exactly once.
    assert scalar(settings.database_url, "SELECT count(*) FROM webhook_payloads") == 24
    first = [r for r, b in zip(results, bodies, strict=True) if b == deliveries[0].body]
    assert len({r.payload_id for r in first}) == 1
    assert sorted(r.duplicate for r in first) == [False, True, True, True, True]
    assert (
        scalar(settings.database_url, "SELECT deliveries FROM webhook_payloads WHERE id = %s", (first[0].payload_id,))
        == 5
    )
    assert len({r.payload_id for r in results}) == 24
    digests = dict(rows(settings.database_url, "SELECT id, sha256 FROM webhook_payloads"))
    for result, body in zip(results, bodies, strict=True):
        assert digests[result.payload_id] == hashlib.sha256(body).hexdigest()
    # Nothing is processed yet in this process (no processor thread in tests): a drain stores each message once.
    with app.app_context():
        processor.drain(settings.whatsapp_phone_number_id)
    stored = stored_wamids(settings.database_url, "group")
    assert sorted(stored) == sorted(w for d in deliveries for w in d.wamids)
    assert set(stored.values()) == {1}


def test_a_payload_left_unprocessed_is_processed_when_a_server_starts(migrated_url):
    """As after a crash or a deploy: the body was archived (and acknowledged), its processing never ran."""
    body = fixture("inbound_text.json")
    queue_raw(migrated_url, body)
    server = LiveServer(backend_env(migrated_url)).start()
    try:
        wait_processed(migrated_url, timeout=20)  # no webhook arrives: the workers' processors find it
    finally:
        server.kill()
    try:
        assert scalar(migrated_url, "SELECT text FROM messages").startswith("Grüße!")
    finally:
        truncate_all(migrated_url)


def test_a_payload_that_cannot_be_processed_is_kept_and_does_not_block_the_queue(app, settings, caplog):
    good = fixture("inbound_text.json")
    broken = b'{"entry": [truncated'  # never accepted by the request path; stands for any processing failure
    queue_raw(settings.database_url, broken, good)
    with app.app_context():
        processor.drain(settings.whatsapp_phone_number_id)
    [(error, processed)] = rows(
        settings.database_url,
        "SELECT processing_error, processed_at IS NOT NULL FROM webhook_payloads WHERE size = %s",
        (len(broken),),
    )
    assert error.startswith("JSONDecodeError") and processed
    assert scalar(settings.database_url, "SELECT count(*) FROM messages") == 1  # the good one went through
    assert (
        bytes(scalar(settings.database_url, "SELECT body FROM webhook_payloads WHERE size = %s", (len(broken),)))
        == broken
    )
    assert "could not be processed" in caplog.text


@pytest.mark.parametrize("processors", [3])
def test_several_processors_draining_one_queue_store_each_message_once(app, settings, processors):
    deliveries = [make_delivery("many", w, seq, per_post=5) for w in range(4) for seq in range(40)]
    queue_raw(settings.database_url, *(d.body for d in deliveries))

    def drain(_):
        with app.app_context():
            while processor.process_batch(settings.whatsapp_phone_number_id, limit=7):
                pass

    with ThreadPoolExecutor(max_workers=processors) as pool:
        list(pool.map(drain, range(processors)))
    stored = stored_wamids(settings.database_url, "many")
    assert len(stored) == len(deliveries) * 5
    assert set(stored.values()) == {1}
    assert scalar(settings.database_url, "SELECT count(*) FROM webhook_payloads WHERE processed_at IS NULL") == 0


def test_operators_see_the_queue_and_can_retry_failed_payloads(app, settings):
    """`flask webhooks status | process | retry-failed` (the runbook in docs/messaging.md)."""
    broken, good = b'{"entry": [', fixture("inbound_text.json")
    queue_raw(settings.database_url, broken, good, age_s=90)
    cli = app.test_cli_runner()
    status = cli.invoke(args=["webhooks", "status"])
    assert status.exit_code == 0 and status.stdout.startswith("queued: 2 (oldest 9"), status.stdout
    assert "failed: 0" in status.stdout
    processed = cli.invoke(args=["webhooks", "process"])
    assert processed.stdout == "processed 2 queued payloads; queue empty\n", (processed.stdout, processed.exception)
    status = cli.invoke(args=["webhooks", "status"]).stdout
    assert status.startswith("queued: 0; failed: 1") and "JSONDecodeError" in status
    # After a fix, the failed payload goes back in the queue (here it fails again: the bytes are still broken).
    assert cli.invoke(args=["webhooks", "retry-failed"]).stdout == "queued again: 1\n"
    assert cli.invoke(args=["webhooks", "status"]).stdout.startswith("queued: 1 ")
    cli.invoke(args=["webhooks", "process"])
    assert scalar(settings.database_url, "SELECT count(*) FROM messages") == 1


def test_a_row_written_by_the_previous_version_is_not_processed_again(app, settings):
    """Rollback safety: the synchronous version (before migration 0003) ingests before it archives and does not
    know `processed_at`; its rows take the column's default (now()) and a roll forward leaves them alone."""
    body = fixture("errors_only.json")  # errors[] are stored as plain events: processing twice would duplicate
    queue_raw(settings.database_url, body, processed_default=True)
    with app.app_context():
        processor.drain(settings.whatsapp_phone_number_id)
    assert scalar(settings.database_url, "SELECT processed_at IS NOT NULL FROM webhook_payloads") is True
    assert scalar(settings.database_url, "SELECT count(*) FROM webhook_events") == 0


def test_receipts_for_many_messages_in_one_batch_end_at_each_ones_highest_status(app, settings):
    """Receipts are stored set-based (one INSERT, one UPDATE per batch): order inside the batch must not matter."""
    wamids = [f"wamid.batch.{i}" for i in range(6)]
    for wamid in wamids:
        outbound_message(settings.database_url, wamid)
    bodies = [status_payload(w, s, 1764080500 + n) for n, s in enumerate(("read", "sent", "delivered")) for w in wamids]
    bodies.append(status_payload(wamids[0], "failed", errors=[{"code": 131026, "title": "Message undeliverable"}]))
    bodies.append(status_payload(wamids[1], "sent", 1764080999))  # a late, lower receipt in different bytes
    queue_raw(settings.database_url, *bodies)
    with app.app_context():
        assert processor.process_batch(settings.whatsapp_phone_number_id) == len(bodies)  # one batch
    final = dict(rows(settings.database_url, "SELECT wamid, status FROM messages WHERE wamid LIKE 'wamid.batch.%%'"))
    assert final == {w: ("failed" if w == wamids[0] else "read") for w in wamids}
    assert rows(
        settings.database_url, "SELECT error_code, error_title FROM messages WHERE wamid = %s", (wamids[0],)
    ) == [("131026", "Message undeliverable")]
    # One receipt row per (wamid, status); the late duplicate "sent" is not stored twice.
    assert scalar(settings.database_url, "SELECT count(*) FROM message_status_events") == 6 * 3 + 1


def _inbound(wamid: str, sender: str) -> bytes:
    from mv_os.meta.signing import meta_json

    message = {"id": wamid, "from": sender, "timestamp": "1764080000", "type": "text", "text": {"body": "hi"}}
    value = {"metadata": {"phone_number_id": "106540352242922"}, "messages": [message]}
    return meta_json({"entry": [{"changes": [{"field": "messages", "value": value}]}]})


def test_a_wamid_seen_before_from_another_sender_leaves_no_empty_conversation(app, settings, client):
    """The same wamid from a second sender (forged, or Meta's mistake) adds no message: it must not add a
    conversation either, whether it comes in a later payload or in the same batch."""
    from tests.support.webhooks import signed_headers

    bodies = [_inbound("wamid.same", "4915100000001"), _inbound("wamid.same", "4915100000002")]
    for body in bodies:
        assert client.post("/webhooks/whatsapp", data=body, headers=signed_headers(body)).status_code == 200
    with app.app_context():
        processor.drain(settings.whatsapp_phone_number_id)
    later = _inbound("wamid.same", "4915100000003")
    assert client.post("/webhooks/whatsapp", data=later, headers=signed_headers(later)).status_code == 200
    with app.app_context():
        processor.drain(settings.whatsapp_phone_number_id)
    url = settings.database_url
    assert scalar(url, "SELECT count(*) FROM messages") == 1
    assert scalar(url, "SELECT count(*) FROM conversations") == 1
    assert scalar(url, "SELECT count(*) FROM conversations c WHERE NOT EXISTS "
                       "(SELECT 1 FROM messages m WHERE m.conversation_id = c.id)") == 0  # fmt: skip
