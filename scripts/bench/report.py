"""The benchmark's report: the markdown table (ceiling against MV-OS, same run) and the gunicorn settings."""

from __future__ import annotations

import os

# gunicorn.conf.py's defaults: the worker model, its connections (gevent) or threads (gthread)
DEFAULTS = {"GUNICORN_WORKER_CLASS": "gevent", "GUNICORN_WORKER_CONNECTIONS": "100", "GUNICORN_THREADS": "8"}


def table(result: dict) -> str:
    c, m = result["ceiling"], result["mvos"]
    check = result["db_check"]
    lines = [
        f"Run {result['started']} on {result['machine']['cpu']} ({result['machine']['cores']} cores, "
        f"{result['machine']['memory']}), {result['machine']['os']}, Python {result['machine']['python']}, "
        f"PostgreSQL {check['postgres']} (synchronous_commit={check['synchronous_commit']}, fsync={check['fsync']}); "
        f"gunicorn.conf.py: {result['gunicorn']}; load average before {result['load_before']}."
        + (f" **{result['topology'][0].upper()}{result['topology'][1:]}.**" if result.get("topology") else ""),
        "",
        "| Scenario | Tool | Ceiling (bare Flask) | MV-OS | MV-OS / ceiling |",
        "| --- | --- | --- | --- | --- |",
    ]

    def row(label, key, tool, fmt):
        if key in c and key in m:
            lines.append(f"| {label} | {tool} | {fmt(c[key])} | {fmt(m[key])} | **{ratio(c[key], m[key], label)}** |")

    def ratio(ceil, ours, label):
        field = "messages_per_s" if "batch" in label else "requests_per_s"
        return f"{ours[field] / ceil[field]:.2f}x" if ceil[field] else "n/a"

    def single(r):
        per_s = r.get("requests_per_s")
        return f"{per_s:,.0f} req/s, p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms"

    processing: list[str] = []
    row(f"1 message per POST, {c['single']['connections']} connections", "single", "python", single)
    row(f"1 message per POST, {c['single']['connections']} connections", "wrk_single", "wrk", single)
    row(
        f"batched, {c['batch']['messages_per_post']} messages per POST, {c['batch']['connections']} connections",
        "batch",
        "python",
        lambda r: f"{r['messages_per_s']:,.0f} messages/s ({r['requests_per_s']:,.0f} req/s, p99 {r['p99_ms']:.0f} ms)",
    )
    for key, label in (("single", "1 message per POST (python)"), ("wrk_single", "1 message per POST (wrk)"),
                       ("batch", f"{c['batch']['messages_per_post']} messages per POST")):  # fmt: skip
        proc = m.get(key, {}).get("processing")
        if proc:
            processing.append(
                f"| {label} | {proc['messages_processed_at_end']:,} | {proc['backlog_payloads_at_end']:,} | "
                f"{proc['drain_s']:.1f} s | {proc['inbox_messages_per_s']:,.0f} |"
            )
    if processing:
        lines += [
            "",
            "Processing behind the request path (MV-OS answers 200 once the body is archived; the processor stores "
            "the messages):",
            "",
            "| Scenario | Messages in the inbox when the load stopped | Payloads still queued | Time to drain them "
            "| Inbox messages/s, load + drain |",
            "| --- | --- | --- | --- | --- |",
            *processing,
        ]
    cpu_c, cpu_m = (side.get("wrk_single", {}).get("cpu_us_per_request") for side in (c, m))
    if cpu_c and cpu_m:
        lines += [
            "",
            "CPU per request under wrk (1 message per POST; gunicorn's master and workers, and the PostgreSQL "
            f"backends of the bench database, from /proc): ceiling {cpu_c['workers']:,} µs; MV-OS "
            f"{cpu_m['workers'] + cpu_m['postgres']:,} µs (workers {cpu_m['workers']:,} + PostgreSQL "
            f"{cpu_m['postgres']:,}). "
            + (
                "The servers have their CPU to themselves; PostgreSQL and the load generator share the other."
                if result.get("topology")
                else "The load generator uses the same cores."
            ),
        ]
    non200 = {k: v for k, v in m["single"]["codes"].items() if k != "200"}
    non200b = {k: v for k, v in m["batch"]["codes"].items() if k != "200"}
    lines += [
        "",
        f"Exactly once: {check['acknowledged_distinct']:,} wamids acknowledged with 200, {check['stored']:,} stored, "
        f"{check['missing']} missing, {check['stored_more_than_once']} stored twice "
        f"({check['stored_not_acknowledged']} stored without an acknowledgement). "
        f"MV-OS non-200 answers: single {non200 or 'none'}, batched {non200b or 'none'}; "
        f"connection errors {m['single']['errors'] + m['batch']['errors']}.",
    ]
    extra = result.get("timings", {})
    if extra:
        lines.append("")
        for key, value in extra.items():
            lines.append(f"- {key}: {value}")
    return "\n".join(lines)


def gunicorn_config() -> str:
    """What gunicorn.conf.py runs with in this environment, e.g. `gevent, WEB_CONCURRENCY=2,
    GUNICORN_WORKER_CONNECTIONS=100`."""
    kind = os.environ.get("GUNICORN_WORKER_CLASS") or DEFAULTS["GUNICORN_WORKER_CLASS"]
    per_worker = "GUNICORN_WORKER_CONNECTIONS" if kind == "gevent" else "GUNICORN_THREADS"
    return "{}, WEB_CONCURRENCY={}, {}={}".format(
        kind, os.environ.get("WEB_CONCURRENCY", "2"), per_worker, os.environ.get(per_worker) or DEFAULTS[per_worker]
    )
