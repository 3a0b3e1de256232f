"""Benchmark MV-OS webhook ingestion against a bare-Flask ceiling measured in the same run.

    nox -s bench -- [--duration 10] [--startup] [--suite]
    nox -s bench -- --login-flood [--duration 15] [--runs 3]   (scripts/bench/login_flood.py)
    (or PYTHONPATH=backend:. python -m scripts.bench ...)

1. A fresh database `mv_os_bench` on DATABASE_URL's server (else the embedded PostgreSQL), migrated.
2. The ceiling: scripts/bench/ceiling.py (reads the body, answers 200) under gunicorn.conf.py.
3. MV-OS: `mv_os:create_app()` under the same gunicorn.conf.py (NODE_ENV=local, LOG_LEVEL=INFO).
4. For each: single-message POSTs at 16 connections, then batched POSTs (100 messages each), driven from
   separate processes (scripts/bench/loadgen.py; plus wrk with scripts/bench/webhook.lua when installed).
5. Every wamid answered 200 must be in the database exactly once.

`--instance-cpus 0` emulates the deployed topology on one machine: the servers (ceiling and MV-OS alike) run
on CPU 0 only, as on App Runner's 1-vCPU instance (env/environments.toml), while PostgreSQL (RDS, deployed)
and the load generators (Meta's senders) run on the other CPUs.  Linux only.

Results: artifacts/bench/latest.json and latest.md (the markdown table also goes to stdout).  A benchmark,
not a test: it prints figures and fails only when the exactly-once check fails.  127.0.0.1 only."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid

from scripts.bench.metering import CpuMeter, Topology, loadavg, machine
from scripts.bench.report import gunicorn_config, table
from scripts.bench.scenarios import dev_warm_start, measure, tests_warm
from scripts.bench.servers import BENCH_DB, OUT, db_check, drop_database, prepare_database, start_server, stop


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--login-flood"]:  # its own scenario and options: scripts/bench/login_flood.py
        from scripts.bench import login_flood

        return login_flood.main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m scripts.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per scenario (default 10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before each (default 2)")
    parser.add_argument("--connections", type=int, default=16, help="connections, single messages (default 16)")
    parser.add_argument("--batch", type=int, default=100, help="messages per batched POST (default 100)")
    parser.add_argument("--batch-connections", type=int, default=16, help="connections, batched (default 16)")
    parser.add_argument("--procs", type=int, default=2, help="load generator processes (default 2)")
    parser.add_argument("--no-wrk", action="store_true", help="do not run wrk even when it is installed")
    parser.add_argument("--startup", action="store_true", help="also time `nox -s dev` warm start to first 200")
    parser.add_argument("--suite", action="store_true", help="also time a warm `nox -R -s tests`")
    parser.add_argument("--label", default="", help="a name for this run, kept in the JSON")
    parser.add_argument("--keep-db", action="store_true", help=f"keep the {BENCH_DB} database after the run")
    parser.add_argument(
        "--instance-cpus",
        metavar="CPUS",
        help="emulate the deployed topology: the servers on these CPUs (e.g. 0: App Runner's 1 vCPU), "
        "PostgreSQL and the load generators on the others (Linux)",
    )
    args = parser.parse_args(argv)
    topology = Topology(args.instance_cpus)

    OUT.mkdir(parents=True, exist_ok=True)
    run = uuid.uuid4().hex[:8]
    result = {
        "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "label": args.label,
        "machine": machine(),
        "load_before": loadavg(),
        "gunicorn": gunicorn_config(),
        "settings": vars(args),
        "mvos_app": os.environ.get("BENCH_MVOS_APP", "mv_os:create_app()"),
    }
    print(f"mv-os bench: load average {result['load_before']}; preparing {BENCH_DB} ...", file=sys.stderr)
    url = prepare_database(os.environ.get("DATABASE_URL"))
    try:
        return _run(args, run, result, url, topology)
    finally:
        topology.restore()
        if not args.keep_db:
            drop_database(url)


def _run(args, run: str, result: dict, url: str, topology: Topology) -> int:
    if topology.instance is not None:
        where = topology.pin_postgres(url)
        result["topology"] = topology.describe() + ("" if "on CPU" in where else f"; {where}")
        print(f"mv-os bench: {result['topology']}", file=sys.stderr)
    proc, base = start_server("ceiling", "scripts.bench.ceiling:app", url, topology)
    try:
        result["ceiling"] = measure("ceiling", base, run + "c", args, meter=CpuMeter(proc, None))
    finally:
        stop(proc)
    proc, base = start_server("mvos", os.environ.get("BENCH_MVOS_APP", "mv_os:create_app()"), url, topology)
    try:
        result["mvos"] = measure("mv-os", base, run, args, database_url=url, meter=CpuMeter(proc, url))
    finally:
        stop(proc)

    acked = result["mvos"]["single"].pop("_acked") + result["mvos"]["batch"].pop("_acked")
    for side in ("ceiling",):
        for key in ("single", "batch"):
            result[side][key].pop("_acked", None)
    result["db_check"] = db_check(url, [run + "s", run + "b"], acked)
    if "wrk_single" in result["mvos"]:
        wrk = result["mvos"]["wrk_single"]
        stored = db_check(url, [run + "w"], [])["stored_not_acknowledged"]
        wrk["stored"] = stored
        wrk["ok_lte_stored"] = wrk["ok"] <= stored  # every 200 wrk counted is a stored wamid (no body repeats)

    topology.restore()  # the nox timings below use the whole machine
    timings = {}
    if args.startup:
        print("  timing `nox -s dev` warm start ...", file=sys.stderr, flush=True)
        timings["nox -s dev, warm start to first 200 on /healthz"] = f"{dev_warm_start():.2f} s"
    if args.suite:
        print("  timing a warm `nox -R -s tests` ...", file=sys.stderr, flush=True)
        seconds, code = tests_warm()
        timings["nox -R -s tests, warm"] = f"{seconds:.1f} s (exit {code})"
    if timings:
        result["timings"] = timings
    result["load_after"] = loadavg()

    text = table(result)
    (OUT / "latest.json").write_text(json.dumps(result, indent=2))
    (OUT / f"{time.strftime('%Y%m%dT%H%M%S')}-{run}.json").write_text(json.dumps(result, indent=2))
    (OUT / "latest.md").write_text(text + "\n")
    print(text)
    check = result["db_check"]
    if check["missing"] or check["stored_more_than_once"]:
        print("mv-os bench: EXACTLY-ONCE CHECK FAILED", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
