"""Login flood: what the throttle lets through, and what a flood does to webhook latency, in one run.

    nox -s bench -- --login-flood [--duration 15] [--runs 3]

Against one MV-OS under gunicorn.conf.py (NODE_ENV=local, werkzeug's default scrypt: a deployed hash's cost) on
the bench database, each phase sends signed single-message webhooks from 4 closed-loop senders and measures
their latency; the flood phases add 8 closed-loop login threads at the same time:

- baseline: webhooks only;
- account: wrong passwords for one real account (the throttle locks it after its limit);
- address: wrong passwords for ever new emails from one address (locks the address after its limit);
- distributed: like `address`, with the throttle table emptied every 50 ms -- an attacker with endless
  addresses, where every attempt costs a hash: only the per-worker hashing bound protects the webhooks.

Reported per phase: webhook p50/p99 (ms) and the logins answered 401 (a password was checked and refused),
429 (throttled) and 503 (the worker's hashing slots stayed busy).  127.0.0.1 only; bounded by --duration."""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
import uuid

import psycopg
import requests
from werkzeug.security import generate_password_hash

from scripts.bench.payloads import SECRET, body, wamid
from scripts.bench.servers import OUT, prepare_database, start_server, stop

EMAIL = "flood@bench.local"
PASSWORD = "bench-right-password"  # noqa: S105  # pragma: allowlist secret (a throwaway bench account)
PHASES = ("baseline", "account", "address", "distributed")


def _webhooks(base: str, run: str, stop_at: float, latencies: list[float], worker: int) -> None:
    from mv_os.meta.signing import signed_headers

    with requests.Session() as session:
        seq = 0
        while time.monotonic() < stop_at:
            data = body([wamid(run, worker, seq)], seq)
            started = time.perf_counter()
            response = session.post(base + "/webhooks/whatsapp", data=data, headers=signed_headers(SECRET, data))
            latencies.append(time.perf_counter() - started)
            assert response.status_code == 200, response.text
            seq += 1


def _logins(base: str, phase: str, stop_at: float, counts: dict[int, int], lock: threading.Lock) -> None:
    with requests.Session() as session:
        while time.monotonic() < stop_at:
            email = EMAIL if phase == "account" else f"{uuid.uuid4().hex[:12]}@bench.local"
            response = session.post(base + "/api/auth/login", json={"email": email, "password": "wrong"}, timeout=30)
            with lock:
                counts[response.status_code] = counts.get(response.status_code, 0) + 1


def _clear_throttle(url: str, stop_at: float) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < stop_at:
            conn.execute("DELETE FROM login_throttle")
            time.sleep(0.05)


def phase(base: str, url: str, name: str, duration: float) -> dict:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DELETE FROM login_throttle")
    run, stop_at = uuid.uuid4().hex[:8], time.monotonic() + duration
    latencies: list[float] = []
    counts: dict[int, int] = {}
    lock = threading.Lock()
    threads = [threading.Thread(target=_webhooks, args=(base, run, stop_at, latencies, i)) for i in range(4)]
    if name != "baseline":
        threads += [threading.Thread(target=_logins, args=(base, name, stop_at, counts, lock)) for _ in range(8)]
    if name == "distributed":
        threads.append(threading.Thread(target=_clear_throttle, args=(url, stop_at)))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ms = sorted(x * 1000 for x in latencies)
    return {
        "webhooks": len(ms),
        "p50_ms": round(statistics.median(ms), 1),
        "p99_ms": round(ms[int(len(ms) * 0.99) - 1], 1),
        "logins": {str(k): v for k, v in sorted(counts.items())},
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.bench --login-flood")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per phase (default 15)")
    parser.add_argument("--runs", type=int, default=3, help="runs of every phase (default 3)")
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    url = prepare_database(None)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO users (email, password_hash, display_name, created_at) VALUES (%s, %s, '', now())",
            (EMAIL, generate_password_hash(PASSWORD)),
        )
    from scripts.bench.metering import Topology

    proc, base = start_server("login-flood", "mv_os:create_app()", url, Topology(None))
    results: dict[str, list[dict]] = {name: [] for name in PHASES}
    try:
        for run in range(args.runs):
            for name in PHASES:
                results[name].append(phase(base, url, name, args.duration))
                print(f"run {run + 1} {name}: {json.dumps(results[name][-1])}", flush=True)
    finally:
        stop(proc)
    (OUT / "login-flood.json").write_text(json.dumps({"duration_s": args.duration, "phases": results}, indent=2))
    print(f"\n| phase | webhook p50 ms | webhook p99 ms | logins 401 per {args.duration:g} s | 429 | 503 |")
    print("|---|---|---|---|---|---|")
    for name, runs in results.items():

        def span(values):
            return f"{min(values):g}-{max(values):g}"

        p50, p99 = span([r["p50_ms"] for r in runs]), span([r["p99_ms"] for r in runs])
        got = {code: span([r["logins"].get(code, 0) for r in runs]) for code in ("401", "429", "503")}
        print(f"| {name} | {p50} | {p99} | {got['401']} | {got['429']} | {got['503']} |")
    return 0
