"""Inventory logic without root: planning added nodes, health reconciliation, against fakes."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest

from tests.unit.test_registry import PREFIX, FakeEtcd
from vhpc.cluster.cluster import Cluster
from vhpc.cluster.events import EventBus
from vhpc.cluster.inventory import LOST_REASON, Health, Inventory, health_step, record_of
from vhpc.cluster.registry import LOST, UP, DnsFeed, NodeRecord, Registry
from vhpc.cluster.states import DaemonState
from vhpc.errors import SpecError
from vhpc.runtime.hostops import CommandResult
from vhpc.spec.grow import (
    AddRequest,
    NodeExistsError,
    NoSuchNodeError,
    check_removable,
    next_names,
    plan_add,
)
from vhpc.spec.load import ClusterOptions, HostFacts, build_spec
from vhpc.spec.model import ClusterSpec

FACTS = HostFacts(online_cpus=(0, 1), mem_total=64 << 30)


def spec_of(n: int = 4, subnet: str = "10.9.0.0/24", max_nodes: int | None = None
            ) -> ClusterSpec:
    return build_spec(ClusterOptions(name="t", nodes=n, subnet=subnet, max_nodes=max_nodes),
                      FACTS)


# -- planning -------------------------------------------------------------------------
def test_count_names_follow_the_highest_compute() -> None:
    spec = spec_of(4)
    assert next_names(spec, 3) == ["compute4", "compute5", "compute6"]
    added = plan_add(spec, AddRequest(count=2, features=("gpu",)), FACTS)
    assert [n.name for n in added] == ["compute4", "compute5"]
    assert [n.slot for n in added] == [14, 15]
    assert added[0].features == ("gpu",) and added[0].memory == spec.computes[0].memory


def test_named_nodes_take_the_first_free_slots_and_round_robin_cpus() -> None:
    spec = spec_of(2)
    spec = spec.with_nodes(tuple(n for n in spec.nodes if n.name != "compute0"))
    added = plan_add(spec, AddRequest(names=("big1",), cpus=2, memory="250M"), FACTS)
    assert added[0].slot == 10 and added[0].cpuset == (0, 1) and added[0].memory == 250 << 20


def test_no_name_and_no_count_adds_one_node() -> None:
    assert [n.name for n in plan_add(spec_of(1), AddRequest(), FACTS)] == ["compute1"]


@pytest.mark.parametrize(("request_", "error", "message"), [
    (AddRequest(names=("compute1",)), NodeExistsError, "already exists"),
    (AddRequest(names=("x", "x")), SpecError, "named twice"),
    (AddRequest(names=("a",), count=2), SpecError, "not both"),
    (AddRequest(cpuset="7"), SpecError, "CPU 7 does not exist"),
    (AddRequest(memory="1M"), SpecError, "below"),
    (AddRequest(names=("slurm",)), SpecError, "reserved"),
    (AddRequest(count=300), SpecError, "holds at most 245 compute nodes"),
    (AddRequest(features=("a b",)), SpecError, "invalid feature"),
])
def test_bad_additions_are_refused_in_one_line(request_: AddRequest, error: type[Exception],
                                               message: str) -> None:
    with pytest.raises(error, match=message) as info:
        plan_add(spec_of(4), request_, FACTS)
    assert "\n" not in str(info.value)


def test_max_node_count_says_how_to_raise_it() -> None:
    with pytest.raises(SpecError, match=r"MaxNodeCount .* is 6.*--max-nodes 8"):
        plan_add(spec_of(4, max_nodes=6), AddRequest(count=4), FACTS)


def test_removing_unknown_or_service_nodes_is_refused() -> None:
    with pytest.raises(NoSuchNodeError, match="no node 'compute9'"):
        check_removable(spec_of(2), ["compute9"])
    with pytest.raises(SpecError, match="controller"):
        check_removable(spec_of(2), ["slurm"])


def test_stopped_flag_survives_the_spec_json_round_trip() -> None:
    spec = spec_of(2)
    node = spec.computes[0]
    from dataclasses import replace
    stopped = spec.with_nodes(tuple(replace(n, stopped=True) if n == node else n
                                    for n in spec.nodes))
    again = ClusterSpec.from_dict(stopped.to_dict())
    assert again.node(node.name).stopped and not again.node("compute1").stopped
    assert "stopped" not in spec.to_dict()["nodes"][2]


# -- health ---------------------------------------------------------------------------
def test_a_slurmd_the_supervisor_still_restarts_is_never_lost() -> None:
    h: Health = Health()
    for state in (DaemonState.BACKOFF, DaemonState.STARTING, DaemonState.BACKOFF,
                  DaemonState.STOPPING, None):
        h, change = health_step(h, state)
        assert change is None and not h.lost


def test_lost_once_when_the_supervisor_gives_up_then_recovers() -> None:
    h, change = health_step(Health(), DaemonState.FATAL)
    assert change == "lost" and h.lost
    h, change = health_step(h, DaemonState.FATAL)
    assert change is None and h.lost
    h, change = health_step(h, DaemonState.RUNNING)
    assert change == "recovered" and h == Health()


# -- reconciliation against fakes -----------------------------------------------------
@dataclass
class FakeDaemonSpec:
    name: str
    node: str


@dataclass
class FakeDaemon:
    spec: FakeDaemonSpec
    state: DaemonState


@dataclass
class FakeSupervisor:
    states: dict[str, DaemonState]

    def daemons(self, node: str | None = None) -> list[FakeDaemon]:
        return [FakeDaemon(FakeDaemonSpec("slurmd", n), s) for n, s in self.states.items()
                if node is None or n == node]

    def stop_nodes(self, nodes: list[str], grace: float = 5.0) -> None:
        for node in nodes:
            self.states[node] = DaemonState.STOPPED


@dataclass
class FakeRuntime:
    pids: dict[str, list[int]] = field(default_factory=dict)

    killed: list[str] = field(default_factory=list)

    def cgroup_pids(self, group: str) -> list[int]:
        return self.pids.get(group.rsplit("/", 1)[1], [])

    def kill_cgroup(self, group: str) -> None:
        self.killed.append(group)


@dataclass
class FakeSlurm:
    calls: list[list[str]] = field(default_factory=list)
    reasons: dict[str, str] = field(default_factory=dict)

    def run(self, argv: list[str], check: bool = True, timeout: float = 30.0
            ) -> CommandResult:
        self.calls.append(argv)
        return CommandResult(argv, 0, "", "")

    def node_states(self) -> dict[str, str]:
        return {}

    def node_reasons(self) -> dict[str, str]:
        return self.reasons


@dataclass
class FakeCluster:
    spec: ClusterSpec
    supervisor: FakeSupervisor
    runtime: FakeRuntime
    events: EventBus = field(default_factory=EventBus)
    writes: int = 0
    lock: threading.RLock = field(default_factory=threading.RLock)
    closing: bool = False

    def set_spec(self, spec: ClusterSpec) -> None:
        self.spec = spec
        self.writes += 1


def make_inventory(tmp_path: Path) -> tuple[Inventory, FakeCluster, FakeSlurm, FakeEtcd,
                                            DnsFeed]:
    spec = spec_of(2)
    fake = FakeCluster(spec, FakeSupervisor({n.name: DaemonState.RUNNING
                                             for n in spec.computes}), FakeRuntime())
    cluster = cast(Cluster, fake)
    etcd = FakeEtcd()
    registry = Registry(etcd, PREFIX)
    registry.start([record_of(cluster, n) for n in spec.nodes])
    registry.stop()
    feed = DnsFeed(etcd, PREFIX, tmp_path, lambda r: f"{r.ip} {r.name}\n")
    slurm = FakeSlurm()
    inv = Inventory(cluster, registry, feed, slurm, lambda: FACTS)
    return inv, fake, slurm, etcd, feed


def test_a_node_the_supervisor_gave_up_on_goes_down_and_out_of_dns(tmp_path: Path) -> None:
    inv, fake, slurm, etcd, feed = make_inventory(tmp_path)
    feed.sync()
    assert (tmp_path / "compute1").exists()
    fake.supervisor.states["compute1"] = DaemonState.BACKOFF
    assert inv.check_health() == []
    fake.supervisor.states["compute1"] = DaemonState.FATAL
    assert inv.check_health() == [("compute1", "lost")]
    assert ["scontrol", "update", "nodename=compute1", "state=down",
            f"reason={LOST_REASON}"] in slurm.calls
    assert _state(etcd, "compute1") == LOST
    feed.sync()
    assert not (tmp_path / "compute1").exists() and (tmp_path / "compute0").exists()
    # no more restarts: stopped, its cgroup emptied, kept stopped in spec.json
    assert fake.supervisor.states["compute1"] is DaemonState.STOPPED
    assert fake.runtime.killed == ["vhpc-t/compute1"]
    assert fake.spec.node("compute1").stopped and fake.writes == 1
    assert inv.check_health() == []
    assert [e.kind for e in fake.events.recent()] == ["node_lost"]


def test_a_node_back_before_it_was_acted_on_recovers(tmp_path: Path) -> None:
    inv, _, slurm, etcd, _ = make_inventory(tmp_path)
    inv.health["compute1"] = Health(lost=True)
    slurm.reasons["compute1"] = LOST_REASON
    assert inv.check_health() == [("compute1", "recovered")]
    assert slurm.calls[-1] == ["scontrol", "update", "nodename=compute1", "state=resume"]
    assert _state(etcd, "compute1") == UP


def test_stopped_nodes_are_not_watched(tmp_path: Path) -> None:
    inv, fake, slurm, _, _ = make_inventory(tmp_path)
    from dataclasses import replace
    fake.spec = fake.spec.with_nodes(tuple(replace(n, stopped=n.name == "compute0")
                                           for n in fake.spec.nodes))
    fake.supervisor.states["compute0"] = DaemonState.STOPPED
    assert inv.check_health() == [] and inv.check_health() == []
    assert slurm.calls == []


def _state(etcd: FakeEtcd, name: str) -> str:
    value: Any = etcd.kv[PREFIX + name][0]
    return NodeRecord.from_json(value).state
