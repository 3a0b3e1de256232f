"""`nox -s bench` prints the CPU each wrk request cost the server (and PostgreSQL); docs/performance.md's current
figures rest on it, so the meter behind it must count a server's worker processes' CPU."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scripts.bench.metering import CpuMeter

BURN_S = 0.3
# A "worker": waits for a line, burns BURN_S of CPU, says so, then idles until killed.
WORKER = (
    "import sys, time\n"
    "sys.stdin.readline()\n"
    "t = time.process_time()\n"
    f"while time.process_time() - t < {BURN_S}:\n"
    "    pass\n"
    "print('done', flush=True)\n"
    "time.sleep(60)\n"
)
# A "master" that starts the worker and waits, like gunicorn's arbiter.
MASTER = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {WORKER!r}])"


def _settled(meter: CpuMeter) -> dict:
    """A sample once the worker exists and its start-up is over (two samples 0.1 s apart agree)."""
    deadline = time.monotonic() + 10
    previous = None
    while time.monotonic() < deadline:
        sample = meter.sample()
        if len(sample["workers"]) >= 2 and sample == previous:
            return sample
        previous = sample
        time.sleep(0.1)
    raise AssertionError("the worker process did not start")


@pytest.mark.skipif(
    not Path("/proc/self/stat").exists(), reason="the meter reads Linux's /proc (the bench omits it elsewhere)"
)
def test_the_meter_counts_the_cpu_of_a_servers_workers_per_request():
    proc = subprocess.Popen(
        [sys.executable, "-c", MASTER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        meter = CpuMeter(proc, database_url=None)
        before = _settled(meter)
        proc.stdin.write("go\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "done"
        after = meter.sample()
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    per_request = CpuMeter.per_request(before, after, requests=1000)
    # 0.3 s of CPU over 1,000 requests is 300 µs each (clock ticks are 10 ms: allow a few, and the print).
    assert 270 <= per_request["workers"] <= 400, per_request
    assert per_request["postgres"] == 0
    assert CpuMeter.per_request(before, after, requests=0) is None
