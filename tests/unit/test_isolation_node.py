"""Node isolation as data: the init script, the node's own /proc and /dev/shm, pids.max,
how commands enter the PID namespace, and teardown ending the node inits last."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import pytest

from tests.unit.fake_runtime import FakeRuntime
from vhpc.cluster import node as node_mod
from vhpc.cluster.cluster import Cluster
from vhpc.cluster.ledger import Kind, Ledger
from vhpc.cluster.teardown import remove_owned
from vhpc.runtime.cgroups import CgroupV1, CgroupV2
from vhpc.runtime.namespaces import INIT_LOOP, NsPaths, render_fstab, setup_script
from vhpc.runtime.proc import ProcessRecord
from vhpc.runtime.spawn import NodeTarget, node_argv
from vhpc.spec.load import ClusterOptions, HostFacts, build_spec
from vhpc.spec.model import DEFAULT_PIDS_MAX, SERVICE_PIDS_MAX, ClusterSpec, NodeRole, NodeSpec
from vhpc.spec.paths import ClusterPaths
from vhpc.spec.sizes import MIB


def test_setup_script_joins_the_cgroup_first_and_ends_as_the_init() -> None:
    script = setup_script("compute0", Path("/s/ns"), Path("/s/ns/compute0.fstab"),
                          [Path("/cg/memory/x/cgroup.procs"), Path("/cg/pids/x/cgroup.procs")])
    lines = script.splitlines()
    assert lines[:3] == ["set -e", "echo $$ > /cg/memory/x/cgroup.procs",
                         "echo $$ > /cg/pids/x/cgroup.procs"]
    assert lines.index("mount -a -T /proc/self/fd/3") < lines.index("echo ready")
    # pid 1 stays: exec, not a child; its loop reaps orphans for as long as the node lives
    assert lines[-1] == (f"exec /bin/sh -c '{INIT_LOOP}' vhpc-init /s/ns/compute0 "
                         "</dev/null >/dev/null 2>&1")


def test_node_mounts_its_own_proc_and_a_bounded_dev_shm() -> None:
    paths = ClusterPaths(Path("/s"))
    node = NodeSpec("compute0", NodeRole.COMPUTE, 10, (0,), 128 * MIB)
    fstab = render_fstab(node_mod.node_mounts(paths, node, node.memory)).splitlines()
    # sources unlike the host's "proc" and "tmpfs": `mount -a` skips a line whose source
    # and target are already mounted, which left nodes on the host's /dev/shm
    assert fstab[0] == "vhpc-proc /proc proc nosuid,nodev,noexec 0 0"
    assert f"vhpc-shm /dev/shm tmpfs mode=1777,nosuid,nodev,size={64 * MIB} 0 0" in fstab
    assert not any(line.startswith(("tmpfs ", "proc ")) for line in fstab)


def test_daemons_fork_into_the_pid_namespace_and_exec_enters_it_with_nsenter() -> None:
    ns = NsPaths.under(Path("/s/ns"), "compute0")
    assert ns.all()[-1] == Path("/s/ns/compute0.pid")
    target = NodeTarget("compute0", ns, (Path("/cg/cgroup.procs"),))
    exec_argv = node_argv(target, ["ps"])
    assert "--pid=/s/ns/compute0.pid" in exec_argv
    # spawn() forks straight into the namespace, so nsenter must not fork again: the
    # supervisor records the daemon's own pid
    assert not any(a.startswith("--pid") for a in node_argv(target, ["slurmd"], pid_ns=False))


def test_pids_max_default_per_role() -> None:
    nodes = (NodeSpec("slurm", NodeRole.CONTROLLER, 2, (0,), 512 * MIB),
             NodeSpec("compute0", NodeRole.COMPUTE, 10, (0,), 125 * MIB))
    spec = ClusterSpec("lab", ipaddress.IPv4Network("10.201.0.0/24"), nodes)
    assert spec.pids_max_of(nodes[1]) == DEFAULT_PIDS_MAX
    assert spec.pids_max_of(nodes[0]) == SERVICE_PIDS_MAX
    assert ClusterSpec.from_dict({**spec.to_dict(), "pids_max": 99}).pids_max == 99
    legacy = {k: v for k, v in spec.to_dict().items() if k != "pids_max"}
    assert ClusterSpec.from_dict(legacy).pids_max == DEFAULT_PIDS_MAX


def test_v2_pids_max_written_when_the_controller_is_there(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu memory pids\n")
    (tmp_path / "cgroup.subtree_control").write_text("")
    cluster = tmp_path / "vhpc-lab"
    cluster.mkdir()
    (cluster / "cgroup.controllers").write_text("cpuset cpu memory pids\n")
    CgroupV2(tmp_path).create("vhpc-lab/compute0", "1", 125 * MIB, 300)
    assert (cluster / "compute0" / "pids.max").read_text() == "300"


def test_v2_without_the_pids_controller_writes_no_pids_max(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpuset memory\n")
    (tmp_path / "cgroup.subtree_control").write_text("")
    cluster = tmp_path / "vhpc-lab"
    cluster.mkdir()
    (cluster / "cgroup.controllers").write_text("cpuset memory\n")
    CgroupV2(tmp_path).create("vhpc-lab/compute0", "1", 125 * MIB, 300)
    assert not (cluster / "compute0" / "pids.max").exists()


def test_v1_pids_max_in_the_pids_hierarchy(tmp_path: Path) -> None:
    for c in ("memory", "cpuset", "cpuacct", "pids"):
        (tmp_path / c).mkdir()
    (tmp_path / "cpuset" / "cpuset.cpus").write_text("0-1\n")
    (tmp_path / "cpuset" / "cpuset.mems").write_text("0\n")
    CgroupV1(tmp_path).create("vhpc-lab/n0", "1", 64 * MIB, 512)
    assert (tmp_path / "pids" / "vhpc-lab" / "n0" / "pids.max").read_text() == "512"


class OrderedRuntime(FakeRuntime):
    """Remembers each terminate() call: which pids, with what grace."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[list[int], float]] = []

    def terminate(self, records: list[ProcessRecord], grace: float = 5.0) -> None:
        if records:
            self.calls.append(([r.pid for r in records], grace))
        super().terminate(records, grace)


def test_teardown_kills_node_inits_after_their_daemons_without_grace(tmp_path: Path) -> None:
    runtime = OrderedRuntime()
    runtime.ends_with[11] = [12]
    ledger = Ledger(tmp_path / "ledger.jsonl")
    for pid, key in ((11, "init@compute0"), (12, "slurmd@compute0"), (13, "manager"),
                     (14, "slurmctld@slurm")):
        runtime.processes[pid] = ProcessRecord(pid, pid)
        ledger.add(Kind.PROCESS, key, "" if key == "manager" else key.partition("@")[2],
                   pid=pid, starttime=pid)
    assert remove_owned(ledger, runtime) == []
    # the whole cluster goes: slurmd ends with its node's init (no signal of its own, no
    # grace to wait for); slurmctld, whose node has no init here, is stopped on its own
    assert runtime.calls == [([13], 5.0), ([14], 5.0), ([11], 0.0)]
    assert ledger.entries() == []


def test_removing_one_node_stops_its_slurmd_before_its_init(tmp_path: Path) -> None:
    runtime = OrderedRuntime()
    runtime.ends_with[11] = [12]
    ledger = Ledger(tmp_path / "ledger.jsonl")
    for pid, key in ((11, "init@compute0"), (12, "slurmd@compute0")):
        runtime.processes[pid] = ProcessRecord(pid, pid)
        ledger.add(Kind.PROCESS, key, "compute0", pid=pid, starttime=pid)
    assert remove_owned(ledger, runtime, nodes="compute0") == []
    assert runtime.calls == [([12], 5.0), ([11], 0.0)]


@pytest.mark.parametrize("key,expected", [("init@compute0", True), ("slurmd@compute0", False),
                                          ("manager", False)])
def test_init_keys(key: str, expected: bool) -> None:
    assert node_mod.is_init_key(key) is expected
    assert node_mod.is_init_key(node_mod.init_key("compute7"))


@pytest.mark.skipif(os.geteuid() != 0, reason="writes files owned by cluser (chown)")
def test_a_node_whose_init_died_gets_a_new_one_before_anything_starts(tmp_path: Path) -> None:
    runtime = FakeRuntime()
    spec = build_spec(ClusterOptions(name="fk", nodes=2),
                      HostFacts(online_cpus=(0, 1), mem_total=1 << 34))
    cluster = Cluster(spec, ClusterPaths(tmp_path / "fk"), runtime)
    cluster.prepare_state()
    cluster.build_network()
    cluster.build_nodes(list(spec.nodes))
    for path in NsPaths.under(cluster.paths.ns_dir, "compute0").all():
        path.touch()  # the fake pins nothing: make the pin file the real runtime would
    runtime.spawn(cluster.target("compute0"), ["true"], tmp_path / "log")
    assert runtime.revived == []  # alive: nothing to do
    runtime.kill_cgroup(node_mod.cgroup_group("fk", "compute0"))  # `vhpc node stop`, OOM
    runtime.spawn(cluster.target("compute0"), ["slurmd"], tmp_path / "log")
    assert runtime.revived == ["compute0"]
    entry = next(e for e in cluster.ledger.entries(Kind.PROCESS) if e.ident == "init@compute0")
    assert runtime.is_alive(ProcessRecord(entry.data["pid"], entry.data["starttime"]))
    assert cluster.teardown() == []
