"""Receipts delivered in parallel and out of order never move a status backwards.

20 parallel duplicate deliveries of one inbound message storing one row is proven by
tests/backend/webhooks/test_whatsapp.py::test_twenty_parallel_duplicate_deliveries_store_one_message (issue 3), and
sequential out-of-order receipts by its status tests; this adds receipts racing each other."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.support.databases import outbound_message, rows, truncate_all, wait_processed
from tests.support.servers import LiveServer, backend_env
from tests.support.webhooks import signed_headers, status_payload

pytestmark = pytest.mark.slow


def test_twenty_parallel_out_of_order_receipts_end_at_the_highest_status(migrated_url):
    read_wamid, failed_wamid = "wamid.race-read", "wamid.race-failed"
    outbound_message(migrated_url, read_wamid)
    outbound_message(migrated_url, failed_wamid)
    failed_error = [{"code": 131047, "title": "Re-engagement message"}]
    bodies = []
    for ts in range(5):  # each receipt five times, in different bytes (timestamps) and the same bytes
        for status in ("sent", "delivered", "read"):
            bodies.append(status_payload(read_wamid, status, 1764080500 + ts))
        bodies.append(status_payload(failed_wamid, "failed" if ts < 2 else "delivered", 1764080600 + ts, failed_error))
    bodies += bodies[:4]
    random.Random(7).shuffle(bodies)
    server = LiveServer(backend_env(migrated_url)).start()
    try:
        url = server.url + "/webhooks/whatsapp"
        with ThreadPoolExecutor(max_workers=20) as pool:
            codes = list(pool.map(lambda b: requests.post(url, data=b, headers=signed_headers(b), timeout=15), bodies))
        wait_processed(migrated_url)  # the processor stores the receipts behind the 200s
    finally:
        server.kill()
    try:
        assert [r.status_code for r in codes] == [200] * len(bodies)
        status = "SELECT status, error_code FROM messages WHERE wamid = %s"
        assert rows(migrated_url, status, (read_wamid,)) == [("read", None)]
        assert rows(migrated_url, status, (failed_wamid,)) == [("failed", "131047")]
        events = "SELECT status, count(*) FROM message_status_events WHERE wamid = %s GROUP BY 1 ORDER BY 1"
        assert rows(migrated_url, events, (read_wamid,)) == [("delivered", 1), ("read", 1), ("sent", 1)]
    finally:
        truncate_all(migrated_url)
