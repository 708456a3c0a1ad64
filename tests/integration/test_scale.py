"""Large and multi-leaf clusters, real kernel and real Slurm (spec/fabric.py, spec/scale.py).

- A cluster file with three racks puts its compute nodes on three leaf bridges joined to
  the cluster bridge: a step spans them, nodes reach each other across leaves, and `down`
  removes every leaf and uplink.
- 256 compute nodes (64M each, overcommitted) boot, run `srun -N256 hostname` with 256
  distinct names, and go away without leftovers. Measured here: ~1 min in all on 2 cores.
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest

from tests.integration.helpers import STATE_ROOT, exec_on, leftovers, vhpc

pytestmark = pytest.mark.privileged

RACKS = """
[cluster]
name = "{name}"
memory = "64M"
accounting = false

[[nodes]]
group = "a"
count = 2
rack = "ra"

[[nodes]]
group = "b"
count = 1
rack = "rb"

[[nodes]]
group = "c"
count = 1
rack = "rc"
"""


def net_links(net_id: str) -> list[str]:
    """Host links named after a cluster's network id."""
    return sorted(p.name for p in Path("/sys/class/net").iterdir()
                  if p.name.startswith(f"vh{net_id}"))


def master(link: str) -> str:
    return Path(f"/sys/class/net/{link}/master").readlink().name


def claimed(name: str) -> bool:
    record = STATE_ROOT / ".neighbour-claims.json"
    return record.exists() and name in json.loads(record.read_text())["claims"]


def test_racks_hang_on_leaf_bridges_that_reach_each_other_and_go_with_down(
        tmp_path: Path) -> None:
    name = "snleaf"
    site = tmp_path / "racks.toml"
    site.write_text(RACKS.format(name=name))
    vhpc("-c", name, "down", check=False)
    vhpc("up", "-f", str(site), "--overcommit", timeout=600)
    try:
        spec = json.loads((STATE_ROOT / name / "spec.json").read_text())
        net_id = spec["net_id"]
        bridge = f"vh{net_id}-{name}"
        leaf_of = {n["name"]: n["leaf"] for n in spec["nodes"] if n["role"] == "compute"}
        assert leaf_of["a0"] == leaf_of["a1"]
        assert len({leaf_of["a0"], leaf_of["b0"], leaf_of["c0"]}) == 3
        slot_of = {n["name"]: n["slot"] for n in spec["nodes"]}
        for node, leaf in leaf_of.items():  # each node's link on its rack's leaf
            assert master(f"vh{net_id}n{slot_of[node]}") == f"vh{net_id}l{leaf}"
        for leaf in set(leaf_of.values()):  # each leaf's uplink on the cluster bridge
            assert master(f"vh{net_id}u{leaf}") == bridge
            assert master(f"vh{net_id}d{leaf}") == f"vh{net_id}l{leaf}"
        assert master(f"vh{net_id}n{slot_of['slurm']}") == bridge  # services: the spine
        assert claimed(name)

        out = exec_on(name, "slurm", "srun", "-N4", "hostname", user=True).stdout
        assert sorted(out.split()) == ["a0", "a1", "b0", "c0"]
        # node to node across two leaves and the spine (slurmd listens on 6818)
        probe = exec_on(name, "a0", "bash", "-c",
                        "timeout 5 bash -c 'echo > /dev/tcp/c0/6818' && echo reached")
        assert "reached" in probe.stdout
        assert_partitions_hold_across_leaves(name)
        added = vhpc("-c", name, "node", "add", "--group", "b", timeout=300)
        assert "b1" in added.stdout + added.stderr
        grown = json.loads((STATE_ROOT / name / "spec.json").read_text())
        b1 = next(n for n in grown["nodes"] if n["name"] == "b1")
        assert b1["leaf"] == leaf_of["b0"]
        assert master(f"vh{net_id}n{b1['slot']}") == f"vh{net_id}l{leaf_of['b0']}"
    finally:
        vhpc("-c", name, "down", check=False)
    assert net_links(net_id) == []
    assert leftovers(name) == []
    assert not claimed(name)


def reaches(cluster: str, node: str, peer: str) -> bool:
    """Whether `node` opens a TCP connection to slurmd (6818) on `peer` within 3 s (by
    address: a node cut from everything has no DNS either)."""
    spec = json.loads((STATE_ROOT / cluster / "spec.json").read_text())
    base = ipaddress.ip_network(spec["subnet"]).network_address
    address = base + next(n["slot"] for n in spec["nodes"] if n["name"] == peer)
    probe = exec_on(cluster, node, "bash", "-c",
                    f"timeout 3 bash -c 'echo > /dev/tcp/{address}/6818' && echo reached",
                    check=False)
    return "reached" in probe.stdout


def assert_partitions_hold_across_leaves(name: str) -> None:
    """A partition between nodes on different leaves drops their traffic (the rules match
    addresses at the sender's port, not only the peer's port on one bridge); a node cut
    from everything is cut from other leaves too, nodes cut together still reach each
    other across leaves; heal restores everything."""
    vhpc("-c", name, "fault", "partition", "a0", "--from", "c0")
    assert not reaches(name, "a0", "c0") and not reaches(name, "c0", "a0")
    assert reaches(name, "a0", "a1") and reaches(name, "a0", "b0")
    vhpc("-c", name, "fault", "heal")
    assert reaches(name, "a0", "c0")
    vhpc("-c", name, "fault", "partition", "b0,c0")
    assert reaches(name, "b0", "c0") and reaches(name, "c0", "b0")
    assert not reaches(name, "a0", "b0") and not reaches(name, "c0", "a1")
    vhpc("-c", name, "fault", "heal")
    assert reaches(name, "a0", "b0") and reaches(name, "c0", "a1")


def test_256_nodes_boot_run_one_step_on_all_and_leave_nothing() -> None:
    name = "sn256"
    vhpc("-c", name, "down", check=False)
    vhpc("-c", name, "up", "-n", "256", "--memory", "64M", "--overcommit", timeout=900)
    try:
        net_id = json.loads((STATE_ROOT / name / "spec.json").read_text())["net_id"]
        out = exec_on(name, "slurm", "srun", "-N256", "hostname", user=True).stdout
        names = set(out.split())
        assert len(names) == 256, f"{len(names)} distinct hostnames of 256"
        assert names == {f"compute{i}" for i in range(256)}
    finally:
        vhpc("-c", name, "down", check=False, timeout=300)
    assert net_links(net_id) == []
    assert leftovers(name) == []
    assert not claimed(name)
