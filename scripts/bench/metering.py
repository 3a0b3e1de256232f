"""Linux /proc metering for the benchmark: CPU seconds of a server and of PostgreSQL's backends, the machine,
and CPU pinning that emulates the deployed topology (`--instance-cpus`)."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
from pathlib import Path


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


def children_of(pid: int) -> list[int]:
    """The processes whose parent is `pid`, from one pass over /proc."""
    return [int(e.name) for e in Path("/proc").glob("[0-9]*") if (CpuMeter._stat(e.name) or (0,))[0] == pid]


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""
