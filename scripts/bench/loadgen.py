"""A small HTTP/1.1 keep-alive load generator (standard library only): N connections, each posting signed
webhook bodies back to back for a fixed time.  Records every latency, every status code, and the wamids of
every request answered 200 (acknowledged), so the benchmark can check them against the database.

Run in separate processes (`generate` is the process entry point) so the client does not share the server's
interpreter; with 2 processes x 8 connections it keeps 16 requests in flight."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from mv_os.meta.signing import HEADER, sign
from scripts.bench.payloads import SECRET, body, wamid

PATH = "/webhooks/whatsapp"


async def _connection(host, port, conn_id, spec, stats, deadline, measure_from):
    per_post = spec["per_post"]
    seq = 0
    reader = writer = None
    while time.monotonic() < deadline:
        ids = [wamid(spec["run"], spec["worker"] * 1000 + conn_id, seq + i) for i in range(per_post)]
        first = (spec["worker"] * 1000 + conn_id) * 1_000_003 + seq
        seq += per_post
        data = body(ids, first)
        head = (
            f"POST {PATH} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"{HEADER}: {sign(SECRET, data)}\r\nContent-Length: {len(data)}\r\n\r\n"
        ).encode("ascii")
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
            started = time.monotonic()
            writer.write(head + data)
            status_line = await reader.readline()
            if not status_line:
                raise ConnectionError("closed")
            status = int(status_line.split()[1])
            length, close = 0, False
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.decode("latin-1").partition(":")
                name = name.strip().lower()
                if name == "content-length":
                    length = int(value)
                elif name == "connection" and value.strip().lower() == "close":
                    close = True
            if length:
                await reader.readexactly(length)
            finished = time.monotonic()
        except (OSError, ConnectionError, asyncio.IncompleteReadError, ValueError, IndexError):
            stats["errors"] += 1
            if writer is not None:
                writer.close()
            reader = writer = None
            await asyncio.sleep(0.01)
            continue
        if status == 200:
            stats["acked"].extend(ids)
        if started >= measure_from and finished <= deadline:
            stats["latencies"].append(finished - started)
            stats["codes"][str(status)] = stats["codes"].get(str(status), 0) + 1
        if close:
            writer.close()
            reader = writer = None
    if writer is not None:
        writer.close()


async def _main(spec):
    stats = {"latencies": [], "codes": {}, "errors": 0, "acked": []}
    start = time.monotonic()
    measure_from = start + spec["warmup"]
    deadline = measure_from + spec["duration"]
    await asyncio.gather(
        *(
            _connection(spec["host"], spec["port"], i, spec, stats, deadline, measure_from)
            for i in range(spec["connections"])
        )
    )
    return stats


def generate(spec: dict) -> None:
    """Process entry point: run the load described by `spec`, write the stats as JSON to spec["out"]."""
    stats = asyncio.run(_main(spec))
    Path(spec["out"]).write_text(json.dumps(stats))
