"""The Cluster against a fake runtime: the ledger, rollback and teardown by ownership."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.unit.fake_runtime import FakeRuntime
from vhpc.cluster.cluster import Cluster
from vhpc.cluster.ledger import Kind, Ledger
from vhpc.cluster.teardown import remove_owned
from vhpc.errors import BootError
from vhpc.spec import scale
from vhpc.spec.load import ClusterOptions, HostFacts, build_spec
from vhpc.spec.paths import ClusterPaths
from vhpc.spec.sizes import MIB

HOST = HostFacts(online_cpus=(0, 1), mem_total=24 * 1024 * MIB)
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="writes files owned by cluser (chown)")


def make(tmp_path: Path, runtime: FakeRuntime, nodes: int = 2) -> Cluster:
    spec = build_spec(ClusterOptions(name="fk", nodes=nodes, accounting=False), HOST)
    return Cluster(spec, ClusterPaths(tmp_path / "fk"), runtime)


@needs_root
def test_build_records_every_resource_and_teardown_removes_exactly_them(
        tmp_path: Path) -> None:
    runtime = FakeRuntime()
    runtime.links.add("eth0")  # the host's own: must survive
    cluster = make(tmp_path, runtime)
    cluster.prepare_state()
    cluster.build_network()
    cluster.build_nodes(list(cluster.spec.nodes))
    kinds = {e.kind for e in cluster.ledger.entries()}
    assert kinds == {Kind.DIRECTORY, Kind.MOUNT, Kind.BRIDGE, Kind.CGROUP, Kind.NAMESPACE,
                     Kind.VETH, Kind.PROCESS, Kind.NEIGH_CLAIM}
    assert runtime.neighbour_claims == {cluster.spec.name: scale.neighbour_entries(4)}
    # six namespace pins a node (net, uts, ipc, mnt, cgroup, pid) and its init process
    assert len(cluster.ledger.entries(Kind.NAMESPACE)) == 4 * 6
    assert sorted(e.ident for e in cluster.ledger.entries(Kind.PROCESS)) == sorted(
        [f"init@{n.name}" for n in cluster.spec.nodes] + ["manager"])  # the booting process
    assert cluster.teardown() == []
    assert runtime.owned() == {"links": {"eth0"}}
    assert not (tmp_path / "fk").exists()


@needs_root
def test_failed_node_creation_rolls_back_everything(tmp_path: Path) -> None:
    runtime = FakeRuntime(fail_on_namespace="dns")
    cluster = make(tmp_path, runtime, nodes=3)
    with pytest.raises(BootError, match="injected failure"):
        cluster.boot(timeout=1)
    assert runtime.owned() == {}
    assert not (tmp_path / "fk").exists()


def test_ledger_survives_a_restart_and_plans_teardown_in_order(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    ledger = Ledger(path)
    ledger.add(Kind.DIRECTORY, "/state")
    ledger.add(Kind.BRIDGE, "br")
    ledger.add(Kind.CGROUP, "vhpc-x")
    ledger.add(Kind.CGROUP, "vhpc-x/n0", "n0")
    proc = ledger.add(Kind.PROCESS, "slurmd@n0", "n0", pid=5, starttime=7)
    ledger.add(Kind.VETH, "v0", "n0")
    ledger.remove(proc)
    with open(path, "a") as f:
        f.write('{"op": "add", "kind": "ve')  # a torn line from a crash
    again = Ledger(path)
    assert [(e.kind, e.ident) for e in again.teardown_plan()] == [
        (Kind.CGROUP, "vhpc-x/n0"), (Kind.CGROUP, "vhpc-x"), (Kind.VETH, "v0"),
        (Kind.BRIDGE, "br"), (Kind.DIRECTORY, "/state")]
    assert [e.ident for e in again.teardown_plan("n0")] == ["vhpc-x/n0", "v0"]


def test_remove_owned_of_one_node_leaves_the_others(tmp_path: Path) -> None:
    runtime = FakeRuntime()
    ledger = Ledger(tmp_path / "ledger.jsonl")
    for node in ("n0", "n1"):
        ledger.add(Kind.VETH, f"v-{node}", node)
        runtime.links.add(f"v-{node}")
    assert remove_owned(ledger, runtime, "n0") == []
    assert runtime.links == {"v-n1"}
    assert [e.ident for e in ledger.entries()] == ["v-n1"]
