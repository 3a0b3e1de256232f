"""`nox -s bench -- --instance-cpus 0` emulates the deployed topology on one machine: the servers on the instance's
CPU, PostgreSQL and the load generators on the others.  Its figures are only what they claim if every process
runs where the bench says, and if the machine is given back afterwards."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from scripts.bench.metering import Topology, children_of

pytestmark = pytest.mark.skipif(
    not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="CPU pinning needs Linux and at least two CPUs",
)


def cpus(pid: int) -> set[int]:
    return os.sched_getaffinity(pid)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("x", "CPU numbers like 0"),
        ("", "some, not all"),
        (",".join(map(str, sorted(os.sched_getaffinity(0)))), "not all"),
    ],
)
def test_a_bad_cpu_list_stops_with_one_clear_line(value, message):
    before = cpus(0)
    with pytest.raises(SystemExit, match=message):
        Topology(value)
    assert cpus(0) == before  # nothing was pinned


def test_the_server_runs_on_the_instance_cpu_and_everything_else_on_the_others():
    everything = cpus(0)
    instance = min(everything)
    topology = Topology(str(instance))
    # A "postmaster" with a child, started before the pinning, like the running PostgreSQL.
    postgres = subprocess.Popen(["/bin/sh", "-c", "sleep 30 & sleep 30; :"])
    server = None
    try:
        assert cpus(0) == everything - {instance}  # the bench itself, hence its load generators and wrk
        server = subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(30)"], preexec_fn=topology.server_preexec()
        )
        assert cpus(server.pid) == {instance}
        child = _child_of(postgres.pid)
        topology.pin_tree(postgres.pid)
        assert cpus(postgres.pid) == cpus(child) == everything - {instance}
    finally:
        topology.restore()
        restored = cpus(postgres.pid), cpus(_child_of(postgres.pid))
        subprocess.run(["pkill", "-P", str(postgres.pid)], check=False)  # the sleeps, before their shell
        for proc in (postgres, server):
            if proc is not None:
                proc.kill()
                proc.wait()
    assert cpus(0) == everything
    assert restored == (everything, everything)
    assert "1 vCPU" in topology.describe()


def _child_of(pid: int) -> int:
    deadline = time.monotonic() + 5  # the shell forks its first sleep moments after it starts
    while not (children := children_of(pid)):
        assert time.monotonic() < deadline, f"process {pid} has no child"
        time.sleep(0.01)
    return children[0]
