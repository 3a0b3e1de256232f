"""The load a benchmark run drives: single-message and batched POSTs from load-generator processes (and wrk
when installed), the processor's backlog after each, and the warm-start timings of nox sessions."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mv_os.meta.signing import sign
from scripts.bench import loadgen
from scripts.bench.metering import CpuMeter, loadavg
from scripts.bench.payloads import SECRET, body, wamid
from scripts.bench.servers import ROOT, free_port, processed_messages, queued, stop, wait_healthy

# The interpreter that runs nox (the bench session passes it; inside its venv there is no nox).
NOX_PYTHON = os.environ.get("BENCH_NOX_PYTHON") or shutil.which("python3") or "python3"


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def drive(url: str, run: str, *, per_post: int, connections: int, procs: int, duration: float, warmup: float) -> dict:
    host, port = url.rsplit("//", 1)[1].split(":")
    ctx = multiprocessing.get_context("spawn")
    tmp = Path(tempfile.mkdtemp(prefix="mv-os-bench-"))
    specs, workers = [], []
    for i in range(procs):
        n = connections // procs + (1 if i < connections % procs else 0)
        spec = {
            "host": host,
            "port": int(port),
            "connections": n,
            "per_post": per_post,
            "run": run,
            "worker": i,
            "duration": duration,
            "warmup": warmup,
            "out": str(tmp / f"{i}.json"),
        }
        specs.append(spec)
        workers.append(ctx.Process(target=loadgen.generate, args=(spec,)))
    for w in workers:
        w.start()
    for w in workers:
        w.join(duration + warmup + 120)
    latencies, codes, errors, acked = [], {}, 0, []
    for spec in specs:
        stats = json.loads(Path(spec["out"]).read_text())
        latencies += stats["latencies"]
        errors += stats["errors"]
        acked += stats["acked"]
        for code, n in stats["codes"].items():
            codes[code] = codes.get(code, 0) + n
    shutil.rmtree(tmp, ignore_errors=True)
    ok = codes.get("200", 0)
    return {
        "tool": "python",
        "connections": connections,
        "messages_per_post": per_post,
        "duration_s": duration,
        "warmup_s": warmup,
        "requests": sum(codes.values()),
        "codes": codes,
        "errors": errors,
        "requests_per_s": round(sum(codes.values()) / duration, 1),
        "messages_per_s": round(ok * per_post / duration, 1),
        "p50_ms": round(percentile(latencies, 50) * 1000, 2),
        "p99_ms": round(percentile(latencies, 99) * 1000, 2),
        "_acked": acked,
    }


def drive_wrk(
    url: str, run: str, *, per_post: int, connections: int, duration: float, meter: CpuMeter | None = None
) -> dict | None:
    """wrk (C, 2 threads) replaying pre-signed bodies with unique wamids; None when wrk is not installed.
    With a meter, the server's and PostgreSQL's CPU per request over the run is added (`cpu_us_per_request`)."""
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    tmp = Path(tempfile.mkdtemp(prefix="mv-os-wrk-"))
    # Enough distinct bodies that none repeats within the run at up to 20,000 requests/s (single) / 1,000 (batch).
    count = int(duration * (20_000 if per_post == 1 else 1_000)) + 1000
    lines = []
    for seq in range(count):
        ids = [wamid(run, 900, seq * per_post + i) for i in range(per_post)]
        data = body(ids, seq * per_post)
        lines.append(sign(SECRET, data) + "\t" + data.decode("ascii"))
    requests_file = tmp / "requests.tsv"
    requests_file.write_text("\n".join(lines) + "\n")
    result_file = tmp / "result.json"
    env = {**os.environ, "BENCH_REQUESTS": str(requests_file), "BENCH_RESULT": str(result_file)}
    cpu_before = meter.sample() if meter else None
    proc = subprocess.run(
        [wrk, "-t2", f"-c{connections}", f"-d{int(duration)}s", "--latency", "--timeout", "10s",
         "-s", str(Path(__file__).with_name("webhook.lua")), url + "/webhooks/whatsapp"],
        env=env, capture_output=True, text=True, timeout=duration + 120,
    )  # fmt: skip
    cpu_after = meter.sample() if meter else None
    try:
        result = json.loads(result_file.read_text())
    except (OSError, ValueError):
        print(proc.stdout, proc.stderr, file=sys.stderr)
        return None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result.update(tool="wrk", connections=connections, messages_per_post=per_post, duration_s=duration)
    result["messages_per_s"] = round(result["ok_per_s"] * per_post, 1)
    result["cpu_us_per_request"] = CpuMeter.per_request(cpu_before, cpu_after, result.get("requests", 0))
    return result


def wait_processed(result: dict, database_url: str | None, run: str, timeout: float = 300.0) -> None:
    """MV-OS archives on the request path and processes behind it: record what the processor had stored when
    the load stopped, and how long it took to finish the backlog (the server keeps running meanwhile)."""
    if database_url is None:
        return
    backlog = queued(database_url)
    done_at_end = processed_messages(database_url, run)
    started = time.monotonic()
    while queued(database_url) and time.monotonic() - started < timeout:
        time.sleep(0.05)
    drain_s = time.monotonic() - started
    total = processed_messages(database_url, run)
    load_s = result["duration_s"] + result.get("warmup_s", 0)
    result["processing"] = {
        "backlog_payloads_at_end": backlog,
        "messages_processed_at_end": done_at_end,
        "drain_s": round(drain_s, 2),
        "messages_processed": total,
        # end to end: every message of the run (warm-up included) stored in the inbox, over load + drain time
        "inbox_messages_per_s": round(total / (load_s + drain_s), 1) if load_s + drain_s else None,
    }


def measure(
    name: str, url: str, run: str, args, database_url: str | None = None, meter: CpuMeter | None = None
) -> dict:
    print(f"  {name}: single ({args.connections} connections, {args.duration:.0f}s) ...", file=sys.stderr, flush=True)
    single = drive(url, run + "s", per_post=1, connections=args.connections, procs=args.procs,
                   duration=args.duration, warmup=args.warmup)  # fmt: skip
    wait_processed(single, database_url, run + "s")
    print(f"  {name}: batched ({args.batch} per POST) ...", file=sys.stderr, flush=True)
    batch = drive(url, run + "b", per_post=args.batch, connections=args.batch_connections, procs=args.procs,
                  duration=args.duration, warmup=args.warmup)  # fmt: skip
    wait_processed(batch, database_url, run + "b")
    out = {"single": single, "batch": batch, "load_after": loadavg()}
    if not args.no_wrk:
        wrk_single = drive_wrk(
            url, run + "w", per_post=1, connections=args.connections, duration=args.duration, meter=meter
        )
        if wrk_single:
            wait_processed(wrk_single, database_url, run + "w")
            out["wrk_single"] = wrk_single
    return out


def dev_warm_start() -> float:
    """Seconds from `nox -R -s dev -- --no-reload` to the first 200 on /healthz (run twice, the second is warm)."""
    port = free_port()
    env = {**os.environ, "PORT": str(port)}
    env.pop("DATABASE_URL", None)
    timings = []
    for _ in range(2):
        started = time.monotonic()
        proc = subprocess.Popen(
            [NOX_PYTHON, "-m", "nox", "-R", "-s", "dev", "--", "--no-reload"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        try:
            wait_healthy(f"http://127.0.0.1:{port}", proc, timeout=120)
            timings.append(time.monotonic() - started)
        finally:
            stop(proc)
    return round(timings[-1], 2)


def tests_warm() -> tuple[float, int]:
    started = time.monotonic()
    proc = subprocess.run([NOX_PYTHON, "-m", "nox", "-R", "-s", "tests"], cwd=ROOT, capture_output=True)
    return round(time.monotonic() - started, 1), proc.returncode
