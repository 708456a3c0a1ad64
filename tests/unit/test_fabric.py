"""The leaf/spine fabric (spec/fabric.py), its links (runtime/network.py) and the host's
neighbour-table claims (runtime/neighbours.py): pure planning and a fake /proc table."""

from __future__ import annotations

import ipaddress
import json
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.unit.fake_runtime import FakeRuntime
from vhpc.cluster.cluster import Cluster
from vhpc.cluster.ledger import Kind
from vhpc.errors import SpecError
from vhpc.runtime import neighbours
from vhpc.runtime.network import LeafSpec, leaf_batch
from vhpc.spec import addressing, fabric
from vhpc.spec.groups import NodeGroup
from vhpc.spec.grow import AddRequest, plan_add
from vhpc.spec.load import ClusterOptions, HostFacts, build_spec
from vhpc.spec.model import ClusterSpec, NodeRole
from vhpc.spec.paths import ClusterPaths

FACTS = HostFacts(online_cpus=(0, 1), mem_total=64 << 30)


def spec_of(n: int, **kw: object) -> ClusterSpec:
    return build_spec(ClusterOptions(name="snfab", nodes=n, memory="16M", overcommit=True,
                                     **kw), FACTS)  # type: ignore[arg-type]


def test_a_small_cluster_keeps_every_node_on_its_bridge() -> None:
    spec = spec_of(16)
    assert {n.leaf for n in spec.nodes} == {fabric.SPINE}
    assert {fabric.bridge_of(spec, n) for n in spec.nodes} == {spec.bridge}


def test_1024_nodes_hang_on_leaves_of_at_most_1000_and_services_on_the_spine() -> None:
    spec = spec_of(1024)
    assert all(n.leaf == fabric.SPINE for n in spec.nodes if n.role is not NodeRole.COMPUTE)
    per_leaf = Counter(n.leaf for n in spec.computes)
    assert sorted(per_leaf) == [0, 1]
    assert max(per_leaf.values()) <= fabric.LEAF_NODES
    assert sum(per_leaf.values()) == 1024
    names = {fabric.bridge_of(spec, n) for n in spec.computes}
    assert names == {fabric.leaf_bridge(spec, 0), fabric.leaf_bridge(spec, 1)}
    assert all(len(name) <= 15 for name in names | set(fabric.uplink(spec, 1)))


def test_a_subnet_leaves_room_for_half_again_so_768_nodes_take_256_more() -> None:
    spec = spec_of(768)
    assert addressing.compute_capacity(spec.subnet) >= 1024
    added = plan_add(spec, AddRequest(count=256), FACTS)
    assert len(added) == 256
    grown = spec.with_nodes(spec.nodes + added)
    fabric.check_ports(grown.nodes)  # still within the bridges' ports
    # the new nodes join the block leaves by slot: the boot's leaf 0, then a new leaf 1
    assert {n.leaf for n in added} <= {0, 1}
    assert {n.leaf for n in spec.computes} == {0}


def test_racks_get_a_leaf_each_and_a_node_added_to_a_group_joins_its_rack() -> None:
    groups = (NodeGroup("a", 2, rack="ra"), NodeGroup("b", 2, rack="rb"),
              NodeGroup("c", 1, rack="ra"))
    spec = spec_of(1, groups=groups)
    leaf_of = {n.name: n.leaf for n in spec.computes}
    assert leaf_of["a0"] == leaf_of["a1"] == leaf_of["c0"] != leaf_of["b0"] == leaf_of["b1"]
    added = plan_add(spec, AddRequest(count=1, group="b"), FACTS)
    assert added[0].leaf == leaf_of["b0"]


def test_one_rack_larger_than_a_leaf_is_refused_with_a_fix() -> None:
    with pytest.raises(SpecError, match=r"one leaf bridge holds at most 1000.*more racks"):
        spec_of(1001, groups=(NodeGroup("big", 1001, rack="r1"),))


def test_more_racks_than_the_spine_has_ports_is_refused_with_a_fix() -> None:
    with pytest.raises(SpecError, match=r"ports on the cluster bridge.*rack_size"):
        spec_of(1100, groups=(NodeGroup("tiny", 1100),), rack_size=1)


def test_old_specs_without_leaves_stay_on_the_spine() -> None:
    spec = spec_of(2)
    data = spec.to_dict()
    assert all("leaf" not in n for n in data["nodes"])
    assert ClusterSpec.from_dict(data) == spec
    big = spec_of(1024)
    assert ClusterSpec.from_dict(big.to_dict()) == big


def test_leaf_batch_makes_a_bridge_and_plugs_its_uplink_into_the_spine() -> None:
    text = leaf_batch([LeafSpec("vhab12l0", "vhab12-x", "vhab12u0", "vhab12d0")])
    assert text.splitlines() == [
        "link add vhab12l0 type bridge forward_delay 0 stp_state 0",
        "link set vhab12l0 up",
        "link add vhab12u0 type veth peer name vhab12d0",
        "link set vhab12u0 master vhab12-x up",
        "link set vhab12d0 master vhab12l0 up",
    ]


def test_boot_records_each_leaf_and_uplink_and_teardown_removes_exactly_them(
        tmp_path: Path) -> None:
    runtime = FakeRuntime()
    spec = spec_of(1, groups=(NodeGroup("a", 2, rack="ra"), NodeGroup("b", 1, rack="rb")),
                   accounting=False)
    cluster = Cluster(spec, ClusterPaths(tmp_path / "snfab"), runtime)
    cluster.build_network()
    cluster.build_nodes(list(spec.nodes))
    bridges = {e.ident for e in cluster.ledger.entries(Kind.BRIDGE)}
    assert bridges == {spec.bridge, fabric.leaf_bridge(spec, 0), fabric.leaf_bridge(spec, 1)}
    uplinks = {fabric.uplink(spec, leaf)[0] for leaf in (0, 1)}
    assert uplinks <= {e.ident for e in cluster.ledger.entries(Kind.VETH)}
    assert runtime.links >= bridges | uplinks
    assert cluster.teardown() == []
    assert runtime.owned() == {}


class FakeProc:
    """/proc/sys/net with the kernel's defaults of the limits vhpc raises."""

    def __init__(self, root: Path) -> None:
        self.dir = root / "net"
        for name, value in (("gc_thresh2", 512), ("gc_thresh3", 1024),
                            ("netdev_max_backlog", 1000)):
            path = self.dir / neighbours.FILES[name]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"{value}\n")

    def limits(self) -> tuple[int, int, int]:
        return tuple(int((self.dir / neighbours.FILES[name]).read_text())  # type: ignore
                     for name in ("gc_thresh2", "gc_thresh3", "netdev_max_backlog"))


def test_claims_raise_the_limits_to_their_sum_and_the_last_release_restores_them(
        tmp_path: Path) -> None:
    table, record = FakeProc(tmp_path), tmp_path / "claims.json"
    neighbours.claim("small", 100, table.dir, record)
    assert table.limits() == (512, 1024, 1000)  # the host's own limits suffice
    neighbours.claim("big", 6000, table.dir, record)
    assert table.limits() == (6100, 12200, 6100)
    assert json.loads(record.read_text())["original"] == {
        "gc_thresh2": 512, "gc_thresh3": 1024, "netdev_max_backlog": 1000}
    neighbours.claim("big", 3000, table.dir, record)  # a claim is replaced, not added
    assert table.limits() == (3100, 6200, 3100)
    neighbours.release("big", table.dir, record)
    assert table.limits() == (512, 1024, 1000)
    neighbours.release("small", table.dir, record)
    neighbours.release("small", table.dir, record)  # twice: nothing to do
    assert table.limits() == (512, 1024, 1000)
    assert not record.exists()


def test_subnets_hold_the_bound_of_compute_nodes() -> None:
    from vhpc.spec import bounds

    need = addressing.smallest_prefix_for(addressing.with_headroom(bounds.MAX_COMPUTE_NODES))
    net = ipaddress.IPv4Network(f"10.0.0.0/{need}")
    assert addressing.compute_capacity(net) >= bounds.MAX_COMPUTE_NODES


def test_a_discarded_tree_leaves_its_path_at_once_and_is_deleted_after(tmp_path: Path) -> None:
    from vhpc.runtime.trash import TRASH_PREFIX, discard_tree

    tree = tmp_path / "state"
    (tree / "nodes" / "c0").mkdir(parents=True)
    (tree / "nodes" / "c0" / "log").write_text("x")
    (tree / "ledger.jsonl").write_text("{}\n")
    discard_tree(tree, first=("ledger.jsonl",))
    assert not tree.exists()
    # nothing that lists clusters (a directory with a ledger) sees the trash as one
    assert not any((p / "ledger.jsonl").exists() for p in tmp_path.iterdir())
    deadline = time.monotonic() + 10
    while any(p.name.startswith(TRASH_PREFIX) for p in tmp_path.iterdir()):
        assert time.monotonic() < deadline, "the trash was not deleted"
        time.sleep(0.05)
    discard_tree(tree)  # gone already: nothing to do
