"""Delivery receipts: kept per (wamid, status) whatever order they arrive in, and applied to outbound messages
with the rule of `status`.  A receipt for a wamid not stored yet (it raced ahead of the send's commit) waits
in `message_status_events` until `outbound.record_sent` applies it."""

from __future__ import annotations

from collections.abc import Sequence

from mv_os.db import database
from mv_os.messaging.status import RANKED
from mv_os.meta.payload import Receipt
from mv_os.models import utcnow

_RANKED = list(RANKED)  # array_position() over it gives the ranking in SQL


def store(receipts: Sequence[tuple[Receipt, int | None]]) -> None:
    """Insert every (receipt, payload id) in one statement (the first of each (wamid, status) wins, in
    order), then promote the messages they name.  The caller holds the wamids' locks."""
    if not receipts:
        return
    columns = (
        [r.wamid for r, _ in receipts],
        [r.status for r, _ in receipts],
        [r.timestamp for r, _ in receipts],
        [r.recipient_id for r, _ in receipts],
        [r.error_code for r, _ in receipts],
        [r.error_title for r, _ in receipts],
        [r.raw for r, _ in receipts],
        [payload_id for _, payload_id in receipts],
    )
    database.execute_sql(
        "INSERT INTO message_status_events (wamid, status, timestamp, recipient_id, error_code, error_title, raw, "
        "payload_id, received_at) SELECT w, s, t, r, c, e, j::jsonb, p, %s "
        "FROM unnest(%b::text[], %b::text[], %b::timestamptz[], %b::text[], %b::text[], %b::text[], %b::text[], "
        "%b::bigint[]) WITH ORDINALITY AS u(w, s, t, r, c, e, j, p, i) ORDER BY i "
        "ON CONFLICT (wamid, status) DO NOTHING",
        (utcnow(), *columns),
    )
    promote(sorted(set(columns[0])))


def promote(wamids: list[str]) -> None:
    """Move each outbound message of `wamids` up to its highest receipt so far, in one UPDATE (`status.advances`
    in SQL); `failed` brings its error code and title."""
    database.execute_sql(
        "UPDATE messages AS m SET status = b.status, updated_at = %s, "
        "error_code = CASE WHEN b.status = 'failed' THEN b.error_code ELSE m.error_code END, "
        "error_title = CASE WHEN b.status = 'failed' THEN b.error_title ELSE m.error_title END "
        "FROM (SELECT DISTINCT ON (e.wamid) e.wamid, e.status, e.error_code, e.error_title, "
        "array_position(%b::text[], e.status) AS rank FROM message_status_events AS e "
        "WHERE e.wamid = ANY(%b::text[]) AND e.status = ANY(%b::text[]) ORDER BY e.wamid, rank DESC) AS b "
        "WHERE m.wamid = b.wamid AND m.direction = 'out' "
        "AND b.rank > COALESCE(array_position(%b::text[], m.status::text), 0)",
        (utcnow(), _RANKED, wamids, _RANKED, _RANKED),
    )
