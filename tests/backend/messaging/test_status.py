"""The one status rule: a status only moves up the ranking and `failed` is terminal.  The pure rule, then the
SQL that applies it (`receipts.promote`, used by webhooks and sends alike) held to it for every pair."""

from __future__ import annotations

import itertools

import pytest

from mv_os import db
from mv_os.messaging import receipts
from mv_os.messaging.status import RANKED, STATUS_RANK, advances, initial_outbound
from mv_os.meta.payload import Receipt

STATUSES = [*RANKED, "received", "deleted"]  # the last two are outside the ranking


@pytest.mark.unit
def test_a_status_never_moves_down_and_failed_is_terminal():
    for current, new in itertools.product(RANKED, RANKED):
        assert advances(current, new) == (STATUS_RANK[new] > STATUS_RANK[current])
    assert not any(advances("failed", new) for new in STATUSES)
    assert advances("read", "failed") and not advances("read", "delivered")


@pytest.mark.unit
def test_unknown_statuses_never_win_and_rank_below_every_known_one():
    assert not advances("sent", "deleted") and not advances(None, "deleted")
    assert all(advances("received", status) for status in RANKED)


@pytest.mark.unit
def test_a_send_starts_at_what_the_provider_said_or_accepted():
    assert initial_outbound("pending") == "pending"
    assert initial_outbound("accepted") == "accepted"
    assert initial_outbound("sent") == "accepted" and initial_outbound(None) == "accepted"


def test_the_sql_promotion_follows_the_rule_for_every_pair(app, conversation):
    with app.app_context(), db.database.connection_context():
        for n, (current, new) in enumerate(itertools.product(STATUSES, STATUSES)):
            wamid = f"wamid.rule.{n}"
            with db.database.atomic() as transaction:
                db.database.execute_sql(
                    "INSERT INTO messages (conversation_id, direction, wamid, type, status, sent_at, created_at, "
                    "updated_at) VALUES (%s, 'out', %s, 'text', %s, now(), now(), now())",
                    (conversation, wamid, current),
                )
                receipt = Receipt(wamid, new, None, None, "131047" if new == "failed" else None, None, "{}")
                receipts.store([(receipt, None)])
                ((stored, code),) = db.database.execute_sql(
                    "SELECT status, error_code FROM messages WHERE wamid = %s", (wamid,)
                ).fetchall()
                transaction.rollback()
            assert stored == (new if advances(current, new) else current), (current, new)
            assert (code == "131047") == (stored == "failed" and current != "failed"), (current, new)


@pytest.mark.unit
def test_the_inbox_shows_every_status_an_outbound_message_can_have():
    """The frontend's tick table (views/conversation.js) names exactly the ranked statuses: a status added here
    without a tick there would show as "Unknown" in the inbox."""
    import re

    from tests.support.servers import ROOT

    script = (ROOT / "frontend" / "static" / "js" / "views" / "conversation.js").read_text()
    table = re.search(r"const STATUS = \{(.*?)\n\};", script, re.S)
    assert table is not None
    assert re.findall(r"^\s+(\w+):", table.group(1), re.M) == list(RANKED)
