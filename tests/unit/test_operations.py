"""Operation records and what an adopting manager does with a dead one's half-done work,
against the fake runtime: exactly the resources of the unfinished operation go."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.unit.fake_runtime import FakeRuntime
from vhpc.cluster import operations as ops
from vhpc.cluster import recovery
from vhpc.cluster.cluster import Cluster
from vhpc.cluster.ledger import Kind, Ledger
from vhpc.cluster.operations import Operation, OpKind
from vhpc.errors import BootError
from vhpc.spec.load import ClusterOptions, HostFacts, build_spec
from vhpc.spec.model import ClusterSpec
from vhpc.spec.paths import ClusterPaths
from vhpc.spec.sizes import MIB

HOST = HostFacts(online_cpus=(0, 1), mem_total=24 * 1024 * MIB)
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="writes files owned by cluser (chown)")


def test_a_record_round_trips_and_an_unreadable_one_counts_as_none(tmp_path: Path) -> None:
    assert ops.pending(tmp_path) is None
    op = Operation(OpKind.ADD, ("compute4", "compute5"))
    ops.begin(tmp_path, op)
    assert ops.pending(tmp_path) == op
    assert ops.record_path(tmp_path).stat().st_mode & 0o777 == 0o600
    ops.finish(tmp_path)
    assert ops.pending(tmp_path) is None
    ops.record_path(tmp_path).write_text('{"kind": "ad')  # cannot happen (atomic), but
    assert ops.pending(tmp_path) is None


def built(tmp_path: Path, runtime: FakeRuntime, computes: int = 3) -> Cluster:
    """A cluster whose boot got as far as every node (its boot record finished)."""
    spec = build_spec(ClusterOptions(name="fk", nodes=computes), HOST)
    cluster = Cluster(spec, ClusterPaths(tmp_path / "fk"), runtime)
    cluster.prepare_state()
    cluster.build_network()
    cluster.build_nodes(list(spec.nodes))
    ops.finish(cluster.paths.root)
    return cluster


def adopting(old: Cluster, spec: ClusterSpec | None = None) -> Cluster:
    """The Cluster a new manager makes from spec.json and the ledger."""
    return Cluster(spec or old.spec, old.paths, old.runtime)


def owned_by(cluster: Cluster, node: str) -> list[str]:
    return [e.ident for e in cluster.ledger.entries(node=node)]


@needs_root
def test_an_add_cut_short_is_rolled_back_and_nothing_else_is_touched(tmp_path: Path) -> None:
    runtime = FakeRuntime()
    old = built(tmp_path, runtime)
    # `node add compute3 compute4` died after making the nodes, before spec.json said so
    new_nodes = build_spec(ClusterOptions(name="fk", nodes=5), HOST).computes[3:]
    ops.begin(old.paths.root, Operation(OpKind.ADD, ("compute3", "compute4")))
    old.build_nodes(list(new_nodes))
    assert owned_by(old, "compute3") and owned_by(old, "compute4")
    veths = {old.spec.veth_of(n) for n in new_nodes}
    assert veths <= runtime.links
    kept = {e.key for e in old.ledger.entries() if e.node not in ("compute3", "compute4")}

    new = adopting(old)
    assert recovery.settle(new) == ["compute3", "compute4"]
    assert owned_by(new, "compute3") == owned_by(new, "compute4") == []
    assert not veths & runtime.links
    assert {e.key for e in new.ledger.entries()} == kept
    assert [n.name for n in new.spec.computes] == ["compute0", "compute1", "compute2"]
    assert ops.pending(new.paths.root) is None
    assert [e.kind for e in new.events.recent()] == ["operation_recovered"]


@needs_root
def test_an_add_that_had_reached_spec_json_is_rolled_back_from_the_spec_too(
        tmp_path: Path) -> None:
    old = built(tmp_path, FakeRuntime())
    ops.begin(old.paths.root, Operation(OpKind.ADD, ("compute2",)))
    new = adopting(old)
    assert recovery.settle(new) == ["compute2"]
    assert [n.name for n in new.spec.computes] == ["compute0", "compute1"]
    saved = ClusterSpec.from_dict(json.loads(new.paths.spec.read_text()))
    assert [n.name for n in saved.computes] == ["compute0", "compute1"]


@needs_root
def test_a_remove_cut_short_is_finished(tmp_path: Path) -> None:
    old = built(tmp_path, FakeRuntime())
    ops.begin(old.paths.root, Operation(OpKind.REMOVE, ("compute0",)))
    new = adopting(old)
    assert recovery.settle(new) == ["compute0"]
    assert owned_by(new, "compute0") == []
    assert "compute0" not in [n.name for n in new.spec.nodes]


@needs_root
def test_resources_of_nodes_outside_the_spec_are_removed_without_a_record(
        tmp_path: Path) -> None:
    old = built(tmp_path, FakeRuntime())
    without = old.spec.with_nodes(tuple(n for n in old.spec.nodes if n.name != "compute2"))
    new = adopting(old, without)
    assert recovery.settle(new) == ["compute2"]
    assert owned_by(new, "compute2") == []
    assert recovery.settle(adopting(new)) == []  # nothing more to do: settled


@needs_root
def test_a_boot_cut_short_removes_the_whole_cluster(tmp_path: Path) -> None:
    runtime = FakeRuntime()
    spec = build_spec(ClusterOptions(name="fk", nodes=2), HOST)
    old = Cluster(spec, ClusterPaths(tmp_path / "fk"), runtime)
    old.prepare_state()  # writes the boot record
    old.build_network()
    old.build_nodes(list(spec.nodes))
    record = ops.pending(old.paths.root)
    assert record is not None and record.kind is OpKind.BOOT
    with pytest.raises(BootError, match=r"never finished booting.*up' again"):
        recovery.settle(adopting(old))
    assert runtime.owned() == {}
    assert not old.paths.root.exists()


@needs_root
def test_the_process_running_the_boot_is_in_the_ledger_as_the_manager(tmp_path: Path) -> None:
    old = built(tmp_path, FakeRuntime())
    managers = [e for e in old.ledger.entries(Kind.PROCESS) if e.ident == "manager"]
    assert [int(e.data["pid"]) for e in managers] == [os.getpid()]


def test_a_resource_made_again_after_its_removal_is_listed_once(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    ledger = Ledger(path)
    first = ledger.add(Kind.PROCESS, "manager", pid=1, starttime=1)
    ledger.add(Kind.CGROUP, "vhpc-x")
    ledger.remove(first)
    ledger.add(Kind.PROCESS, "manager", pid=2, starttime=2)
    for again in (ledger, Ledger(path)):
        assert [(e.ident, e.data.get("pid")) for e in again.entries()] == [
            ("vhpc-x", None), ("manager", 2)]


@needs_root
def test_no_node_change_starts_once_teardown_has_begun(tmp_path: Path) -> None:
    from tests.unit.test_inventory import FakeSlurm
    from vhpc.cluster.inventory import Inventory
    from vhpc.errors import ClusterStateError
    from vhpc.spec.grow import AddRequest

    runtime = FakeRuntime()
    cluster = built(tmp_path, runtime)
    inventory = Inventory(cluster, None, None, FakeSlurm(), lambda: HOST)
    assert inventory.lock is cluster.lock  # one lock for every change
    assert cluster.teardown() == []
    with pytest.raises(ClusterStateError, match="being taken down"):
        inventory.add(AddRequest(count=1), wait=False)
    with pytest.raises(ClusterStateError, match="being taken down"):
        inventory.stop_node("compute0")
    assert runtime.owned() == {} and not cluster.paths.root.exists()


@needs_root
def test_a_boot_whose_manager_runs_is_not_adopted(tmp_path: Path) -> None:
    spec = build_spec(ClusterOptions(name="fk", nodes=1), HOST)
    cluster = Cluster(spec, ClusterPaths(tmp_path / "fk"), FakeRuntime())
    assert recovery.booting_manager(cluster.paths) is None
    cluster.prepare_state()  # this process is the booting manager
    assert recovery.booting_manager(cluster.paths) == os.getpid()
    ops.finish(cluster.paths.root)  # booted
    assert recovery.booting_manager(cluster.paths) is None


def test_a_removal_after_the_state_directory_went_does_not_bring_it_back(
        tmp_path: Path) -> None:
    state = tmp_path / "fk"
    ledger = Ledger(state / "ledger.jsonl")
    entry = ledger.add(Kind.PROCESS, "manager", pid=1, starttime=1)
    shutil.rmtree(state)  # teardown removed the directory, a late remover still holds one
    ledger.remove(entry)
    assert not state.exists() and ledger.entries() == []


def test_the_spec_of_a_cluster_is_replaced_only_by_set_spec() -> None:
    src = Path(__file__).resolve().parents[2] / "src" / "vhpc"
    assignments = [f"{path.relative_to(src)}: {line.strip()}"
                   for path in sorted(src.rglob("*.py"))
                   for line in path.read_text().splitlines() if ".spec = " in line]
    # Cluster.__init__ and Cluster.set_spec (which holds Cluster.lock and writes spec.json)
    assert assignments == ["cluster/cluster.py: self.spec = spec"] * 2


@needs_root
def test_daemons_of_a_node_stopped_in_the_spec_are_stopped_on_adoption(
        tmp_path: Path) -> None:
    from dataclasses import replace

    from vhpc.runtime.proc import ProcessRecord

    runtime = FakeRuntime()
    old = built(tmp_path, runtime)
    slurmd = ProcessRecord(4242, 99)
    runtime.processes[slurmd.pid] = slurmd
    old.ledger.add(Kind.PROCESS, "slurmd@compute1", "compute1", **slurmd.to_dict())
    # the manager died after writing 'stopped' and before stopping the daemons
    stopped = old.spec.with_nodes(tuple(replace(n, stopped=n.name == "compute1")
                                        for n in old.spec.nodes))
    new = adopting(old, stopped)
    assert recovery.settle(new) == []
    assert slurmd.pid not in runtime.processes
    assert [e.ident for e in new.ledger.entries(Kind.PROCESS, node="compute1")] == [
        "init@compute1"]


def test_a_dead_manager_is_named_with_its_pid_and_silence(tmp_path: Path) -> None:
    from vhpc.runtime.proc import record_of
    from vhpc.services.slurm import heartbeat_file

    paths = ClusterPaths(tmp_path / "fk")
    ledger = Ledger(paths.ledger)
    ledger.add(Kind.PROCESS, "manager", pid=999_999_999, starttime=1)  # no such process
    beat = heartbeat_file(paths)
    beat.parent.mkdir(parents=True)
    beat.touch()
    os.utime(beat, (1000.0, 1000.0))
    note = recovery.dead_manager_note(paths, now=1042.0)
    assert note == ("manager: dead (pid 999999999, nothing supervised the cluster for 42s); "
                    "starting one that adopts the cluster")
    me = record_of(os.getpid())
    assert me is not None
    ledger.add(Kind.PROCESS, "manager", pid=me.pid, starttime=me.starttime)
    assert recovery.dead_manager_note(paths) is None  # this process: alive
