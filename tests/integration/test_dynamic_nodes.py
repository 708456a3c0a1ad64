"""Dynamic inventory for real: etcd records, DNS from them, Slurm dynamic nodes.

One cluster for the whole module (4 nodes grown to 16): the steps build on each other,
as a user's session would.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.helpers import STATE_ROOT, exec_on, leftovers, vhpc, wait_until

pytestmark = pytest.mark.privileged
NAME = "t3dyn"


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    vhpc("-c", NAME, "clean", check=False)
    vhpc("-c", NAME, "up", "-n", "4")
    try:
        yield NAME
    finally:
        vhpc("-c", NAME, "down", check=False)
        assert leftovers(NAME) == []


def run(cluster: str, node: str, *command: str, check: bool = True, user: bool = False
        ) -> str:
    return exec_on(cluster, node, *command, check=check, user=user).stdout


def sinfo_states(cluster: str) -> dict[str, str]:
    out = run(cluster, "slurm", "sinfo", "-h", "-N", "-o", "%N %T")
    return dict(line.split() for line in out.splitlines() if line.strip())


def resolves(cluster: str, name: str, on: str = "compute0") -> bool:
    return vhpc("-c", cluster, "exec", on, "--", "getent", "hosts", name,
                check=False).returncode == 0


def records(cluster: str) -> dict[str, dict[str, object]]:
    """The registry's node records, once the manager filled it: `up` returns when the
    nodes are idle, and the fill follows (an API command such as `status` waits for it)."""
    vhpc("-c", cluster, "status", "--json")
    out = run(cluster, "slurm", "etcdctl", "get", "--prefix", f"/vhpc/{cluster}/nodes/",
              "--print-value-only")
    return {r["name"]: r for r in (json.loads(x) for x in out.splitlines() if x.strip())}


def test_every_node_has_a_registry_record_readable_from_a_node(cluster: str) -> None:
    recs = records(cluster)
    assert set(recs) == {"slurm", "dns", "db", "compute0", "compute1", "compute2", "compute3"}
    assert recs["compute0"]["state"] == "up" and recs["compute0"]["ip"]


def test_hosts_file_names_only_service_nodes(cluster: str) -> None:
    hosts = (STATE_ROOT / cluster / "etc" / "hosts").read_text()
    assert " slurm" in hosts and "compute" not in hosts
    assert resolves(cluster, "compute3") and resolves(cluster, f"compute3.{cluster}")


def test_grow_from_4_to_16_and_srun_on_all(cluster: str) -> None:
    vhpc("-c", cluster, "node", "add", "compute4")
    vhpc("-c", cluster, "node", "add", "--count", "11", "--features", "big,fast")
    states = sinfo_states(cluster)
    assert sorted(states) == sorted(f"compute{i}" for i in range(16))
    assert set(states.values()) == {"idle"}
    out = run(cluster, "slurm", "srun", "-N16", "hostname", user=True)
    assert sorted(out.split()) == sorted(f"compute{i}" for i in range(16))
    hostsdir = STATE_ROOT / cluster / "dns" / "hosts.d"
    # dnsmasq re-reads its hosts directory through inotify: allow for a loaded CI machine
    wait_until(lambda: resolves(cluster, "compute12", on="compute3"), timeout=3,
               what=f"compute12 in DNS ({sorted(os.listdir(hostsdir))})")
    spec = json.loads((STATE_ROOT / cluster / "spec.json").read_text())
    assert len([n for n in spec["nodes"] if n["role"] == "compute"]) == 16


def test_bad_input_is_one_line_and_changes_nothing(cluster: str) -> None:
    before = (STATE_ROOT / cluster / "spec.json").read_text()
    for args, message in [
        (("add", "compute4"), "already exists"),
        (("rm", "compute99"), "has no node 'compute99'"),
        (("add", "--cpuset", "4095"), "does not exist on this host"),
        (("add", "--count", "300"), "holds at most"),
    ]:
        proc = vhpc("-c", cluster, "node", *args, check=False)
        assert proc.returncode == 2, proc.stderr
        assert message in proc.stderr and proc.stderr.count("\n") == 1
    assert (STATE_ROOT / cluster / "spec.json").read_text() == before


def test_remove_a_node_while_a_job_runs_elsewhere(cluster: str) -> None:
    job = run(cluster, "slurm", "sbatch", "--parsable", "-w", "compute1", "--wrap", "sleep 4",
              user=True).strip()
    wait_until(lambda: "RUNNING" in run(cluster, "slurm", "scontrol", "show", "job", job),
               timeout=10, what="the job to run")
    vhpc("-c", cluster, "node", "rm", "compute7")
    assert "compute7" not in sinfo_states(cluster)
    wait_until(lambda: not resolves(cluster, "compute7"), timeout=3, what="compute7 out of DNS")
    assert "compute7" not in records(cluster)
    wait_until(lambda: "COMPLETED" in run(cluster, "slurm", "scontrol", "show", "job", job),
               timeout=20, what="the job to complete")


def test_rm_drain_waits_for_the_running_job(cluster: str) -> None:
    job = run(cluster, "slurm", "sbatch", "--parsable", "-w", "compute8", "--wrap", "sleep 3",
              user=True).strip()
    wait_until(lambda: "RUNNING" in run(cluster, "slurm", "scontrol", "show", "job", job),
               timeout=10, what="the job to run")
    start = time.monotonic()
    vhpc("-c", cluster, "node", "rm", "compute8", "--drain")
    assert time.monotonic() - start > 1.0
    info = run(cluster, "slurm", "scontrol", "show", "job", job)
    assert "COMPLETED" in info, info


def test_killed_slurmd_is_restarted(cluster: str) -> None:
    doc = json.loads(vhpc("-c", cluster, "status", "--json").stdout)
    node = next(n for n in doc["nodes"] if n["name"] == "compute2")
    slurmd = next(d for d in node["services"] if d["name"] == "slurmd")
    os.kill(slurmd["pid"], signal.SIGKILL)

    def restarted() -> bool:
        doc = json.loads(vhpc("-c", cluster, "status", "--json").stdout)
        n = next(n for n in doc["nodes"] if n["name"] == "compute2")
        d = next(d for d in n["services"] if d["name"] == "slurmd")
        return bool(d["restarts"] >= slurmd["restarts"] + 1 and d["state"] == "RUNNING")

    wait_until(restarted, timeout=10, what="slurmd to be restarted")
    wait_until(lambda: sinfo_states(cluster).get("compute2") == "idle", timeout=10,
               what="compute2 idle")


def test_stop_shows_down_with_reason_and_start_returns_idle(cluster: str) -> None:
    vhpc("-c", cluster, "node", "stop", "compute3")
    assert sinfo_states(cluster)["compute3"].startswith("down")
    reasons = run(cluster, "slurm", "sinfo", "-h", "-R", "-o", "%N|%E")
    assert "compute3|stopped by vhpc" in reasons
    wait_until(lambda: not resolves(cluster, "compute3"), timeout=3, what="compute3 out of DNS")
    assert records(cluster)["compute3"]["state"] == "stopped"
    vhpc("-c", cluster, "node", "start", "compute3")
    assert sinfo_states(cluster)["compute3"] == "idle"
    wait_until(lambda: resolves(cluster, "compute3"), timeout=2, what="compute3 in DNS")


def test_a_node_whose_processes_keep_dying_is_down_and_out_of_dns(cluster: str) -> None:
    procs = next(Path("/sys/fs/cgroup").glob(f"*/vhpc-{cluster}/compute5/cgroup.procs"))
    # lost when the supervisor gives up: ten quick failures, backoff 0.5 s doubling to 5 s
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # keep killing what the supervisor restarts
        for pid in procs.read_text().split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
        if records(cluster)["compute5"]["state"] == "lost":
            break
        time.sleep(0.05)
    assert records(cluster)["compute5"]["state"] == "lost"
    time.sleep(1.0)  # the supervisor does not bring it back on its own
    assert sinfo_states(cluster)["compute5"].startswith("down")
    assert "compute5|vhpc: node lost" in run(cluster, "slurm", "sinfo", "-h", "-R",
                                             "-o", "%N|%E")
    wait_until(lambda: not resolves(cluster, "compute5"), timeout=3, what="compute5 out of DNS")
    vhpc("-c", cluster, "node", "start", "compute5")
    assert sinfo_states(cluster)["compute5"] == "idle"
    assert records(cluster)["compute5"]["state"] == "up"
    wait_until(lambda: resolves(cluster, "compute5"), timeout=3, what="compute5 in DNS")


def test_killed_manager_comes_back_with_the_cluster_whole(cluster: str) -> None:
    job = run(cluster, "slurm", "sbatch", "--parsable", "-N2", "--wrap", "srun sleep 4",
              user=True).strip()
    pid = int((STATE_ROOT / cluster / "run" / "manager.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    nodes = json.loads(vhpc("-c", cluster, "node", "ls", "--json").stdout)  # re-adopts
    names = {n["name"] for n in nodes if n["role"] == "compute"}
    assert names == {f"compute{i}" for i in range(16)} - {"compute7", "compute8"}
    assert set(records(cluster)) == names | {"slurm", "dns", "db"}
    vhpc("-c", cluster, "node", "add", "compute7")  # a removed name can come back
    wait_until(lambda: resolves(cluster, "compute7"), timeout=3, what="compute7 in DNS")
    wait_until(lambda: "COMPLETED" in run(cluster, "slurm", "scontrol", "show", "job", job),
               timeout=20, what="the job to survive the manager restart")
