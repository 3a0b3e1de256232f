"""Benchmark MV-OS webhook ingestion against a bare-Flask ceiling measured in the same run.

    nox -s bench                       # or: python -m scripts.bench [--duration 10] [--startup] [--suite]

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
import contextlib
import json
import multiprocessing
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "backend"))

from mv_os.meta.signing import sign  # noqa: E402
from scripts.bench import loadgen  # noqa: E402
from scripts.bench.payloads import CONTACTS, SECRET, body, wamid  # noqa: E402

OUT = ROOT / "artifacts" / "bench"
BENCH_DB = "mv_os_bench"
# gunicorn.conf.py's defaults: the worker model, its connections (gevent) or threads (gthread)
DEFAULTS = {"GUNICORN_WORKER_CLASS": "gevent", "GUNICORN_WORKER_CONNECTIONS": "100", "GUNICORN_THREADS": "8"}
# The interpreter that runs nox (the bench session passes it; inside its venv there is no nox).
NOX_PYTHON = os.environ.get("BENCH_NOX_PYTHON") or shutil.which("python3") or "python3"


# ------------------------------------------------------------------------------------------------ helpers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 30.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early ({proc.returncode})")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1) as response:  # noqa: S310 - http://127.0.0.1 only
                if response.status == 200:
                    return time.monotonic() - started
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer /healthz within {timeout}s")


def stop(proc: subprocess.Popen, timeout: float = 30.0) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def machine() -> dict:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return {
        "cpu": model or platform.processor(),
        "cores": os.cpu_count(),
        "memory": mem,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


class CpuMeter:
    """CPU seconds used so far by a gunicorn server (master and workers) and by the PostgreSQL backends connected
    to the bench database, read from Linux's /proc (None elsewhere).  A backend that exits between two samples
    takes its time with it: the PostgreSQL figure is a lower bound (the servers keep their connections open)."""

    HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def __init__(self, proc: subprocess.Popen, database_url: str | None):
        self.proc = proc
        self.database_url = database_url

    @classmethod
    def _stat(cls, pid: int | str) -> tuple[int, float] | None:
        """(parent pid, CPU seconds: utime + stime) of a process, None when it is gone."""
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            return int(fields[1]), (int(fields[11]) + int(fields[12])) / cls.HZ
        except (OSError, IndexError, ValueError):
            return None

    def _server(self) -> dict[int, float]:
        """CPU of the master and of each process it started (its workers), from one pass over /proc."""
        cpu = {}
        for entry in Path("/proc").glob("[0-9]*"):
            stat = self._stat(entry.name)
            if stat is not None and self.proc.pid in (int(entry.name), stat[0]):
                cpu[int(entry.name)] = stat[1]
        return cpu

    def _postgres_pids(self) -> list[int]:
        if self.database_url is None:
            return []
        import psycopg

        with psycopg.connect(self.database_url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchall()
        return [pid for (pid,) in rows]

    def sample(self) -> dict[str, dict[int, float]] | None:
        if not Path("/proc/self/stat").exists():
            return None
        backends = {pid: stat[1] for pid in self._postgres_pids() if (stat := self._stat(pid)) is not None}
        return {"workers": self._server(), "postgres": backends}

    @staticmethod
    def per_request(before: dict | None, after: dict | None, requests: int) -> dict[str, float] | None:
        """Microseconds of CPU per request between two samples, per group (processes in both, or new since)."""
        if before is None or after is None or not requests:
            return None
        return {
            group: round(sum(cpu - before[group].get(pid, 0.0) for pid, cpu in after[group].items()) / requests * 1e6)
            for group in ("workers", "postgres")
        }


# ------------------------------------------------------------------------------------- instance emulation


class Topology:
    """Where the processes of a run may execute (`--instance-cpus`): the servers on the instance's CPUs, the
    bench itself (its load generators and wrk inherit it) and PostgreSQL on the rest.  Without the option
    everything shares every CPU, and nothing here changes a thing."""

    def __init__(self, instance_cpus: str | None):
        self.all = set(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else set()
        self.instance: set[int] | None = None
        self.postgres_pinned: list[int] = []
        if instance_cpus is None:
            return
        if not hasattr(os, "sched_setaffinity"):
            raise SystemExit("mv-os bench: --instance-cpus needs Linux (sched_setaffinity)")
        try:
            wanted = {int(cpu) for cpu in instance_cpus.split(",") if cpu.strip()}
        except ValueError:
            raise SystemExit(
                f"mv-os bench: --instance-cpus takes CPU numbers like 0 or 0,1, got {instance_cpus!r}"
            ) from None
        if not wanted or not wanted < self.all:
            raise SystemExit(
                f"mv-os bench: --instance-cpus must name some, not all, of this machine's CPUs {sorted(self.all)}"
            )
        self.instance = wanted
        os.sched_setaffinity(0, self.others)  # the bench, its load generators and wrk

    @property
    def others(self) -> set[int]:
        return self.all - (self.instance or set())

    def server_preexec(self):
        """For Popen: the server (gunicorn's master; its workers inherit it) runs on the instance's CPUs."""
        if self.instance is None:
            return None
        cpus = self.instance
        return lambda: os.sched_setaffinity(0, cpus)

    def pin_postgres(self, database_url: str) -> str:
        """The PostgreSQL server behind `database_url` (its postmaster and every process it has started; new
        backends inherit the postmaster's CPUs) onto the other CPUs, when it runs on this machine."""
        if self.instance is None:
            return ""
        import psycopg

        with psycopg.connect(database_url, autocommit=True) as conn:
            backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
            stat = CpuMeter._stat(backend)
            local = stat is not None and _comm(backend).startswith("postgres")
        if not local:
            return "PostgreSQL is not on this machine (not pinned)"
        self.pin_tree(stat[0])
        return f"PostgreSQL on CPU {','.join(map(str, sorted(self.others)))}"

    def pin_tree(self, root: int) -> None:
        """`root` and its children onto the other CPUs (restored by `restore`)."""
        for pid in [root, *children_of(root)]:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.sched_setaffinity(pid, self.others)
                self.postgres_pinned.append(pid)

    def restore(self) -> None:
        for pid in self.postgres_pinned:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.sched_setaffinity(pid, self.all)
        if self.instance is not None:
            os.sched_setaffinity(0, self.all)

    def describe(self) -> str | None:
        if self.instance is None:
            return None
        inst, rest = (",".join(map(str, sorted(c))) for c in (self.instance, self.others))
        like = " (App Runner's 1 vCPU)" if len(self.instance) == 1 else ""
        return (
            f"instance emulation: both servers on CPU {inst}{like}; PostgreSQL (RDS, deployed) and "
            f"the load generators on CPU {rest}"
        )


TOPOLOGY = Topology(None)


def children_of(pid: int) -> list[int]:
    """The processes whose parent is `pid`, from one pass over /proc."""
    return [int(e.name) for e in Path("/proc").glob("[0-9]*") if (CpuMeter._stat(e.name) or (0,))[0] == pid]


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


# ----------------------------------------------------------------------------------------------- database


def prepare_database(url: str | None) -> str:
    from mv_os.localdb import STATE_DIR, ensure_database, server_url, with_database

    admin = with_database(url, "postgres") if url else server_url(STATE_DIR / "pgdata")
    bench_url = ensure_database(admin, BENCH_DB, recreate=True)

    from mv_os import create_app, db
    from mv_os.settings import Settings

    app = create_app(Settings(database_url=bench_url, log_level="WARNING"))
    with app.app_context():
        db.migrate()
    db.database.obj.close_all()
    # Steady state, as in production: the senders are known contacts (a reply storm answers a broadcast), and
    # the planner has statistics (a never-analyzed table gets sequential scans until autovacuum runs).
    import psycopg

    with psycopg.connect(bench_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO contacts (wa_id, profile_name, created_at, updated_at) "
            "SELECT '49151' || lpad(g::text, 8, '0'), 'Bench Kontakt ' || g || %s, now(), now() "
            "FROM generate_series(0, %s - 1) AS g",
            (" \u00fc", CONTACTS),
        )
        conn.execute("ANALYZE")
    return bench_url


def db_check(url: str, runs: list[str], acked: list[str]) -> dict:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT wamid, count(*) FROM messages WHERE wamid LIKE ANY(%s) GROUP BY wamid",
            ([f"wamid.BENCH.{run}.%" for run in runs],),
        ).fetchall()
        version = conn.execute("SHOW server_version").fetchone()[0]
        sync = conn.execute("SHOW synchronous_commit").fetchone()[0]
        fsync = conn.execute("SHOW fsync").fetchone()[0]
    stored = dict(rows)
    acked_set = set(acked)
    return {
        "acknowledged": len(acked),
        "acknowledged_distinct": len(acked_set),
        "stored": len(stored),
        "missing": len(acked_set - stored.keys()),
        "stored_more_than_once": sum(1 for n in stored.values() if n > 1),
        "stored_not_acknowledged": len(stored.keys() - acked_set),
        "postgres": version,
        "synchronous_commit": sync,
        "fsync": fsync,
    }


# -------------------------------------------------------------------------------------------------- runs


def server_env(database_url: str, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WHATSAPP_", "JWT_", "MOCK_"))}
    env.update(
        NODE_ENV="local",
        DATABASE_URL=database_url,
        PYTHONPATH=os.pathsep.join([str(ROOT / "backend"), str(ROOT)]),
        LOG_LEVEL=os.environ.get("BENCH_LOG_LEVEL", "INFO"),
        PORT=str(port),
        BIND_HOST="127.0.0.1",
    )
    return env


def start_server(name: str, app: str, database_url: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    log = open(OUT / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), app],
        env=server_env(database_url, port),
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=TOPOLOGY.server_preexec(),  # sets the CPUs only (no threads yet)
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
    except BaseException:
        stop(proc)  # a server that never became healthy is not left running
        raise
    return proc, url


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


def queued(database_url: str) -> int:
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM webhook_payloads WHERE processed_at IS NULL").fetchone()[0]


def processed_messages(database_url: str, run: str) -> int:
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM messages WHERE wamid LIKE %s", (f"wamid.BENCH.{run}.%",)).fetchone()[
            0
        ]


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


# ------------------------------------------------------------------------------------------- nox timings


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


# ---------------------------------------------------------------------------------------------- report


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


def main(argv: list[str] | None = None) -> int:
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
    parser.add_argument(
        "--instance-cpus",
        metavar="CPUS",
        help="emulate the deployed topology: the servers on these CPUs (e.g. 0: App Runner's 1 vCPU), "
        "PostgreSQL and the load generators on the others (Linux)",
    )
    args = parser.parse_args(argv)
    global TOPOLOGY  # one topology per run, read by start_server
    TOPOLOGY = Topology(args.instance_cpus)

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
        return _run(args, run, result, url)
    finally:
        TOPOLOGY.restore()


def _run(args, run: str, result: dict, url: str) -> int:
    if TOPOLOGY.instance is not None:
        where = TOPOLOGY.pin_postgres(url)
        result["topology"] = TOPOLOGY.describe() + ("" if "on CPU" in where else f"; {where}")
        print(f"mv-os bench: {result['topology']}", file=sys.stderr)
    proc, base = start_server("ceiling", "scripts.bench.ceiling:app", url)
    try:
        result["ceiling"] = measure("ceiling", base, run + "c", args, meter=CpuMeter(proc, None))
    finally:
        stop(proc)
    proc, base = start_server("mvos", os.environ.get("BENCH_MVOS_APP", "mv_os:create_app()"), url)
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

    TOPOLOGY.restore()  # the nox timings below use the whole machine
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
