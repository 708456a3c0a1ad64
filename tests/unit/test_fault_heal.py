"""A heal waits until slurmctld has heard from the healed nodes (cluster/fault_control.py
`_return_to_service`): a node slurmctld sets DOWN 'Not responding' just after the heal (a
ping sent into the cut failing late) is resumed, not left down for a minute."""

from __future__ import annotations

from pathlib import Path

from tests.unit.fake_runtime import FakeRuntime
from tests.unit.test_faults import FakeFaults, spec
from vhpc.cluster.cluster import Cluster
from vhpc.cluster.fault_control import NOT_RESPONDING, FaultController, settle_step
from vhpc.cluster.faults import FaultKind, FaultSpec
from vhpc.runtime.hostops import CommandResult
from vhpc.spec.paths import ClusterPaths

Look = tuple[dict[str, str], dict[str, str]]  # sinfo's states, and reasons


class ScriptedSlurm:
    """Slurm as seen by successive looks after the heal (the last one repeats)."""

    def __init__(self, looks: list[Look]) -> None:
        self.looks = looks
        self.seen = 0
        self.ran: list[list[str]] = []

    def run(self, argv: list[str], check: bool = True, timeout: float = 30.0,
            input: str | None = None) -> CommandResult:
        self.ran.append(argv)
        return CommandResult(argv, 0, "", "")

    def node_states(self) -> dict[str, str]:
        self.seen += 1
        return self.looks[min(self.seen, len(self.looks)) - 1][0]

    def node_reasons(self) -> dict[str, str]:
        return self.looks[min(self.seen, len(self.looks)) - 1][1]


def healed(tmp_path: Path, looks: list[Look], other: FaultSpec | None = None
           ) -> tuple[ScriptedSlurm, Cluster, list[float]]:
    """Partition compute0 (and inject `other`), then heal it, Slurm as in `looks`."""
    cluster = Cluster(spec(), ClusterPaths(tmp_path / "fk"), FakeRuntime())
    cluster.paths.root.mkdir(parents=True)
    slurm = ScriptedSlurm(looks)
    cluster.slurm = slurm  # type: ignore[assignment]
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    ctl = FaultController(cluster, FakeFaults(), monotonic=lambda: now[0], sleep=sleep)
    [cut] = ctl.add(FaultSpec(FaultKind.PARTITION, ("compute0",)))
    if other is not None:
        ctl.add(other)
    ctl.clear(cut.id)
    return slurm, cluster, slept


RESUME = ["scontrol", "update", "nodename=compute0", "state=resume"]


def test_a_node_set_down_just_after_the_heal_is_resumed(tmp_path: Path) -> None:
    looks: list[Look] = [
        ({"compute0": "idle*"}, {}),  # the heal: slurmctld has not pinged it since
        ({"compute0": "down*"}, {"compute0": NOT_RESPONDING}),  # a late ping failed
        ({"compute0": "idle*"}, {}),  # resumed: slurmctld pings it
        ({"compute0": "idle"}, {}),  # heard
    ]
    slurm, cluster, slept = healed(tmp_path, looks)
    assert slurm.ran == [RESUME] and slurm.seen == 4 and len(slept) == 3
    assert [e.kind for e in cluster.events.recent()].count("fault_resumed") == 1


def test_a_responding_node_is_not_waited_for(tmp_path: Path) -> None:
    slurm, _, slept = healed(tmp_path, [({"compute0": "idle", "compute1": "idle*"}, {})])
    assert slurm.ran == [] and slurm.seen == 1 and slept == []


def test_the_wait_is_bounded_and_a_node_still_cut_is_not_waited_for(tmp_path: Path) -> None:
    slurm, _, slept = healed(tmp_path, [({"compute0": "idle*"}, {})])
    assert slurm.ran == [] and 0 < sum(slept) <= 60  # SlurmdTimeout + MessageTimeout
    still = FaultSpec(FaultKind.PARTITION, ("compute0",), peers=("compute1",))
    slurm, _, slept = healed(tmp_path / "2", [({"compute0": "down*"},
                                               {"compute0": NOT_RESPONDING})], still)
    assert slurm.ran == [] and slept == []


def test_settle_step() -> None:
    states = {"a": "idle*", "b": "down*", "c": "idle", "d": "drained*"}
    reasons = {"b": NOT_RESPONDING, "d": "Kill task failed"}
    assert settle_step({"a", "b", "c", "d", "e"}, states, reasons) == (["b"], {"a", "b"})
