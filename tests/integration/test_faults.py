"""Faults on a real cluster (issue 15): a partition Slurm notices and heal undoes, total
loss failing a node's steps, a frozen node's job resuming after thaw, slurmctld killed
and restarted by supervision with its queue, bad input in one line, and `down` after
faults leaving nothing (no nft table, no qdisc, no frozen cgroup).

One cluster for the module; the tests run in order and each clears what it injected.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.helpers import STATE_ROOT, leftovers, status, vhpc, wait_for

pytestmark = pytest.mark.privileged
NAME = "hnflt"
TABLE = f"vhpc-{NAME}"


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    vhpc("-c", NAME, "clean", check=False)
    vhpc("-c", NAME, "up", "-n", "3")
    try:
        yield NAME
    finally:
        vhpc("-c", NAME, "down", check=False)
        assert leftovers(NAME) == []
        assert TABLE not in nft_tables()


def nft_tables() -> str:
    return subprocess.run(["nft", "list", "tables"], capture_output=True, text=True,
                          check=False).stdout


def run(*command: str, check: bool = True,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return vhpc("-c", NAME, "exec", "slurm", "--user", "cluser", "--", *command, check=check,
                timeout=timeout)


def fault(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return vhpc("-c", NAME, "fault", *args, check=check)


def active() -> list[dict[str, Any]]:
    faults: list[dict[str, Any]] = json.loads(fault("ls", "--json").stdout)
    return faults


def slurm_states() -> dict[str, str]:
    out = run("sinfo", "-h", "-N", "-o", "%N %T").stdout
    return dict(line.split() for line in out.splitlines() if line.strip())


def state_at_once(node: str) -> str:
    """The node's state from the host's sinfo (no `vhpc exec` in between: right after a
    command returns, before slurmctld's next ping could change it)."""
    env = dict(os.environ, SLURM_CONF=str(STATE_ROOT / NAME / "etc" / "slurm" / "slurm.conf"))
    return subprocess.run(["sinfo", "-h", "-N", "-n", node, "-o", "%T"], env=env,
                          capture_output=True, text=True, timeout=60).stdout.strip()


def daemon(node: str, name: str) -> dict[str, Any]:
    n = next(n for n in status(NAME)["nodes"] if n["name"] == node)
    found: dict[str, Any] = next(d for d in n["services"] if d["name"] == name)
    return found


def test_bad_input_is_one_line_and_changes_nothing(cluster: str) -> None:
    vhpc("-c", cluster, "node", "stop", "compute2")
    try:
        cases = {
            ("loss", "compute9", "10"): "no node 'compute9'",
            ("freeze", "compute2"): "'compute2' is stopped",
            ("loss", "compute0", "150"): "out of range",
            ("rate", "compute0", "1bit"): "out of range",
            ("rate", "compute0", "fast"): "not a rate",
            ("kill", "nosuchd@slurm"): "no supervised daemon",
            ("clear", "f999"): "no active fault",
        }
        for args, message in cases.items():
            result = fault(*args, check=False)
            assert result.returncode == 2, (args, result.stderr)
            assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    finally:
        vhpc("-c", cluster, "node", "start", "compute2")
    delay = fault("delay", "compute0", "50", check=False)
    if delay.returncode == 0:  # a kernel with netem: a real delay, then cleared
        fault("clear", "--all")
    else:  # this machine's kernel: no sch_netem
        assert delay.returncode == 2 and "sch_netem" in delay.stderr
    assert active() == []
    assert TABLE not in nft_tables()


def test_partition_is_noticed_by_slurm_and_heal_brings_the_node_back(cluster: str) -> None:
    pid = daemon("compute0", "slurmd")["pid"]
    out = fault("partition", "compute0").stdout
    assert "compute0 cut off from everything" in out
    assert TABLE in nft_tables()
    # NOT_RESPONDING ('*') after SlurmdTimeout (30 s), DOWN* a little later
    assert wait_for(lambda: slurm_states().get("compute0", "").endswith("*"), 120), \
        slurm_states()
    assert [f["kind"] for f in active()] == ["partition"]
    fault("heal")
    assert not state_at_once("compute0").endswith("*")  # slurmctld has heard from it
    assert wait_for(lambda: slurm_states().get("compute0") == "idle", 120), slurm_states()
    assert daemon("compute0", "slurmd")["pid"] == pid  # nothing was restarted
    assert active() == [] and TABLE not in nft_tables()
    events = vhpc("-c", cluster, "events").stdout
    assert "fault_injected" in events and "fault_cleared" in events


def test_a_job_ending_in_a_partition_and_heal_returning_once_slurm_hears(
        cluster: str) -> None:
    """The job ends while its node is cut off from everything (its end cannot reach
    slurmctld); `heal` returns once slurmctld has heard from the node again: never
    'allocated*'/'idle*' (or DOWN 'Not responding' by a ping that failed after the heal,
    which left the node down for more than a minute and requeued the job)."""
    home = STATE_ROOT / cluster / "home" / "cluser"
    go = home / "heal-go"
    go.unlink(missing_ok=True)
    job = run("sbatch", "--parsable", "-w", "compute0", "--chdir", str(home), "--wrap",
              f"while [ ! -e {go.name} ]; do sleep 0.2; done").stdout.strip()
    assert wait_for(lambda: run("squeue", "-h", "-j", job, "-o", "%T").stdout.strip()
                    == "RUNNING", 60)
    fault("partition", "compute0")
    go.touch()  # the job ends inside the cut
    assert wait_for(lambda: slurm_states().get("compute0", "").endswith("*"), 120), \
        slurm_states()
    fault("heal")  # returns once slurmctld has heard from the node
    state = state_at_once("compute0")
    assert state and not state.endswith("*") and not state.startswith("down"), state
    assert wait_for(lambda: job not in run("squeue", "-h", "-o", "%i").stdout, 60), \
        run("squeue").stdout
    assert wait_for(lambda: slurm_states().get("compute0") == "idle", 60), slurm_states()
    shown = run("scontrol", "show", "job", job, check=False).stdout
    assert "Restarts=0" in shown or not shown.strip(), shown  # ran once: not requeued
    go.unlink()


def test_total_loss_fails_the_nodes_steps_and_clear_restores_them(cluster: str) -> None:
    fault("loss", "compute1", "100")
    step = run("timeout", "15", "srun", "-w", "compute1", "-t", "1", "hostname",
               check=False)
    assert step.returncode != 0 and "compute1" not in step.stdout
    fault("clear", "--all")
    assert wait_for(lambda: slurm_states().get("compute1") == "idle", 120), slurm_states()
    assert run("srun", "-w", "compute1", "hostname").stdout.strip() == "compute1"


def test_a_frozen_nodes_job_resumes_after_thaw(cluster: str) -> None:
    home = STATE_ROOT / cluster / "home" / "cluser"
    out = home / "stamps.out"
    job = run("sbatch", "--parsable", "-w", "compute2", "-o", str(out), "--wrap",
              "for i in $(seq 1 8); do date +%s; sleep 1; done").stdout.strip()
    assert wait_for(lambda: out.exists() and out.read_text().strip() != "", 60)
    fault("freeze", "compute2")
    freezer = Path(f"/sys/fs/cgroup/freezer/vhpc-{cluster}/compute2/freezer.state")
    if freezer.exists():
        assert freezer.read_text().strip() == "FROZEN"
    time.sleep(6)  # hung, not dead: below SlurmdTimeout, so Slurm keeps the job
    assert daemon("compute2", "slurmd")["state"] == "RUNNING"
    assert daemon("compute2", "slurmd")["restarts"] == 0
    assert job in run("squeue", "-h", "-o", "%i %T").stdout
    fault("thaw", "compute2")
    assert wait_for(lambda: job not in run("squeue", "-h", "-o", "%i").stdout, 90)
    stamps = [int(s) for s in out.read_text().split()]
    assert len(stamps) == 8  # the job ran to its end
    assert max(b - a for a, b in itertools.pairwise(stamps)) >= 4  # the pause
    assert active() == []


def test_killed_slurmctld_is_restarted_with_its_queue(cluster: str) -> None:
    held = [run("sbatch", "--parsable", "--hold", "--wrap", "true").stdout.strip()
            for _ in range(3)]
    time.sleep(5)  # slurmctld saves its state in the background: what a SIGKILL may lose
    before = daemon("slurm", "slurmctld")
    assert "slurmctld@slurm killed" in fault("kill", "slurmctld@slurm").stdout
    assert wait_for(lambda: daemon("slurm", "slurmctld")["restarts"] > before["restarts"]
                    and daemon("slurm", "slurmctld")["state"] == "RUNNING", 60)
    assert daemon("slurm", "slurmctld")["pid"] != before["pid"]
    assert wait_for(lambda: run("scontrol", "ping", check=False).returncode == 0, 60)
    queue = run("squeue", "-h", "-o", "%i").stdout.split()
    assert set(held) <= set(queue)
    run("scancel", *held)
    assert active() == []  # a kill is done at once: an event, not an active fault


def test_down_after_faults_leaves_nothing(cluster: str) -> None:
    fault("partition", "compute0", "--from", "controller")
    fault("loss", "compute1", "20")
    fault("rate", "compute2", "1mbit")
    fault("freeze", "compute1")
    assert len(active()) == 4
    veth = subprocess.run(["tc", "qdisc", "show"], capture_output=True, text=True).stdout
    assert "tbf" in veth
    vhpc("-c", cluster, "down")
    assert TABLE not in nft_tables()
    assert leftovers(cluster) == []
