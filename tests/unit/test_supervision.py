"""The give-up policy end to end against fakes: the real Supervisor decides when a node is
lost (never before it gives up), its heartbeat, and the Slurm health check script that
drains nodes while the manager is dead."""

from __future__ import annotations

import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from tests.unit.fake_runtime import FakeRuntime
from tests.unit.test_inventory import FakeSlurm, spec_of
from vhpc.cluster import node as nodes_mod
from vhpc.cluster.cluster import Cluster
from vhpc.cluster.events import EventBus
from vhpc.cluster.inventory import LOST_REASON, Inventory
from vhpc.cluster.ledger import Ledger
from vhpc.cluster.states import DaemonState
from vhpc.cluster.supervisor import (
    FATAL_AFTER,
    MAX_BACKOFF,
    Supervised,
    Supervisor,
    heartbeat_age,
    touch,
)
from vhpc.runtime.namespaces import NsPaths
from vhpc.runtime.proc import ProcessRecord
from vhpc.runtime.spawn import NodeTarget
from vhpc.services import slurm
from vhpc.services.base import DaemonSpec
from vhpc.spec.load import HostFacts
from vhpc.spec.model import ClusterSpec
from vhpc.spec.paths import ClusterPaths

FACTS = HostFacts(online_cpus=(0, 1), mem_total=64 << 30)


@dataclass
class SupervisedCluster:
    """What Inventory reads of a Cluster, with the real Supervisor inside."""

    spec: ClusterSpec
    supervisor: Supervisor
    runtime: FakeRuntime
    events: EventBus
    lock: threading.RLock = field(default_factory=threading.RLock)
    closing: bool = False

    def set_spec(self, spec: ClusterSpec) -> None:
        self.spec = spec


def make(tmp_path: Path) -> tuple[Inventory, SupervisedCluster, FakeSlurm,
                                  dict[str, Supervised]]:
    spec = spec_of(2)
    runtime, events = FakeRuntime(), EventBus()
    sup = Supervisor(runtime, Ledger(tmp_path / "ledger.jsonl"), events)
    paths = ClusterPaths(tmp_path)
    slurmds = {}
    for node in spec.computes:
        group = nodes_mod.cgroup_group(spec.name, node.name)
        target = NodeTarget(node.name, NsPaths.under(tmp_path, node.name),
                            (Path(group) / "cgroup.procs",))
        slurmds[node.name] = sup.start(slurm.slurmd(spec, paths, node), target)
    fake = SupervisedCluster(spec, sup, runtime, events)
    slurm_ = FakeSlurm()
    return Inventory(cast(Cluster, fake), None, None, slurm_, lambda: FACTS), fake, slurm_, \
        slurmds


def crash(fake: SupervisedCluster, daemon: Supervised) -> None:
    """slurmd dies (and with it every process of its node, as in the issue)."""
    assert daemon.record is not None
    fake.runtime.crash(daemon.record.pid)
    fake.supervisor._on_exit(daemon)  # the fake runtime has no pidfd to report it


def restart_now(fake: SupervisedCluster, daemon: Supervised) -> None:
    daemon.next_start = time.monotonic() - 1
    fake.supervisor._restart_due()


def test_two_quick_slurmd_crashes_do_not_make_a_node_lost(tmp_path: Path) -> None:
    inv, fake, slurm_, slurmds = make(tmp_path)
    daemon = slurmds["compute1"]
    for _ in range(2):
        crash(fake, daemon)
        assert daemon.state is DaemonState.BACKOFF
        assert inv.check_health() == []
        time.sleep(1.1)  # longer than the old 1 s grace, shorter than the backoff
        assert inv.check_health() == []
        restart_now(fake, daemon)
        assert daemon.to_dict()["state"] == "RUNNING"
    assert inv.check_health() == []
    assert slurm_.calls == [] and not fake.spec.node("compute1").stopped
    assert "node_lost" not in [e.kind for e in fake.events.recent()]


def test_a_node_is_lost_exactly_when_the_supervisor_gives_up(tmp_path: Path) -> None:
    inv, fake, slurm_, slurmds = make(tmp_path)
    daemon = slurmds["compute1"]
    delays = []
    for failure in range(1, FATAL_AFTER + 2):
        crash(fake, daemon)
        if failure <= FATAL_AFTER:
            assert daemon.state is DaemonState.BACKOFF and daemon.next_start is not None
            delays.append(round(daemon.next_start - time.monotonic(), 1))
            assert inv.check_health() == []
            restart_now(fake, daemon)
    assert daemon.state is DaemonState.FATAL
    # the documented policy: 0.5 s doubling up to 5 s, ten tries
    assert delays == [0.5, 1.0, 2.0, 4.0] + [MAX_BACKOFF] * (FATAL_AFTER - 4)
    assert inv.check_health() == [("compute1", "lost")]
    assert ["scontrol", "update", "nodename=compute1", "state=down",
            f"reason={LOST_REASON}"] in slurm_.calls
    assert fake.spec.node("compute1").stopped and not fake.spec.node("compute0").stopped
    assert [e.kind for e in fake.events.recent()].count("node_lost") == 1


def test_the_supervisor_thread_keeps_a_heartbeat(tmp_path: Path) -> None:
    beat = tmp_path / "manager.heartbeat"
    stale_at = tmp_path / "manager.deadline"
    sup = Supervisor(FakeRuntime(), Ledger(tmp_path / "l.jsonl"), EventBus(), heartbeat=beat,
                     deadline=(stale_at, slurm.MANAGER_STALE_AFTER))
    assert heartbeat_age(beat) is None
    sup.start_thread()
    try:
        deadline = time.monotonic() + 10
        while not stale_at.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        age = heartbeat_age(beat)
        assert age is not None and age < slurm.MANAGER_STALE_AFTER
        # the health check's deadline: that far past the beat
        ahead = stale_at.stat().st_mtime - beat.stat().st_mtime
        assert abs(ahead - slurm.MANAGER_STALE_AFTER) < 1.0
    finally:
        sup.shutdown()


# -- the HealthCheckProgram every slurmd runs --------------------------------------------
def run_check(tmp_path: Path, heartbeat_age_s: float | None, reason: str = "none",
              state: str = "IDLE") -> list[str]:
    """Run the rendered script with a fake scontrol on PATH; return scontrol's argv lines."""
    paths = ClusterPaths(tmp_path / "state")
    paths.run.mkdir(parents=True, exist_ok=True)
    deadline = slurm.health_deadline_file(paths)
    if heartbeat_age_s is not None:  # as the supervisor left it at its last beat
        touch(deadline, slurm.MANAGER_STALE_AFTER - heartbeat_age_s)
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    calls = tmp_path / "calls"
    fake = bindir / "scontrol"
    fake.write_text(f'#!/bin/sh\necho "$*" >> {calls}\n'
                    f'[ "$1" = show ] && echo "NodeName=compute0 State={state} '
                    f'Reason={reason} [root@1]"\nexit 0\n')
    fake.chmod(0o755)
    script = tmp_path / "healthcheck"
    script.write_text(slurm.render_health_check(paths, marker=tmp_path / "marker",
                                                now=tmp_path / "now"))
    script.chmod(0o755)
    env = {"PATH": f"{bindir}:/usr/bin:/bin", "SLURMD_NODENAME": "compute0"}
    subprocess.run([str(script)], env=env, check=True, timeout=30)
    return calls.read_text().splitlines() if calls.exists() else []


def test_health_check_drains_once_while_the_heartbeat_is_stale(tmp_path: Path) -> None:
    stale = slurm.MANAGER_STALE_AFTER + 30
    drain = ["show node -o compute0",
             f"update nodename=compute0 state=drain reason={slurm.MANAGER_DOWN_REASON}"]
    assert run_check(tmp_path, stale) == drain
    assert run_check(tmp_path, stale) == drain  # marked: no second scontrol call


def test_health_check_keeps_a_drain_it_did_not_make(tmp_path: Path) -> None:
    stale = slurm.MANAGER_STALE_AFTER + 30
    assert run_check(tmp_path, stale, "maintenance", "IDLE+DRAIN") == [
        "show node -o compute0"]
    calls = run_check(tmp_path, 1.0, "maintenance", "IDLE+DRAIN")
    assert calls[-1] == "show node -o compute0"  # back: not resumed either


def test_health_check_resumes_only_its_own_drain_when_the_manager_is_back(
        tmp_path: Path) -> None:
    run_check(tmp_path, slurm.MANAGER_STALE_AFTER + 30)
    calls = run_check(tmp_path, 1.0, reason=slurm.MANAGER_DOWN_REASON, state="IDLE+DRAIN")
    assert calls[-2:] == ["show node -o compute0", "update nodename=compute0 state=resume"]
    assert not (tmp_path / "marker").exists()
    run_check(tmp_path, slurm.MANAGER_STALE_AFTER + 30)
    calls = run_check(tmp_path, 1.0, reason="an admin's own drain")
    assert calls[-1] == "show node -o compute0"  # not resumed


def test_health_check_does_nothing_when_all_is_well(tmp_path: Path) -> None:
    assert run_check(tmp_path, 1.0) == []
    assert run_check(tmp_path, None) == []  # no heartbeat yet: a cluster still booting


class FailingRuntime(FakeRuntime):
    """Spawns fail (as into a node whose namespaces are gone) once `broken` is set."""

    broken = False

    def spawn(self, target: NodeTarget, command: list[str], log_file: Path,
              env: dict[str, str] | None = None
              ) -> tuple[subprocess.Popen[bytes] | None, ProcessRecord]:
        if self.broken:
            raise OSError(12, "Cannot allocate memory")
        return super().spawn(target, command, log_file, env)


def test_starts_that_fail_after_a_long_run_count_towards_giving_up(tmp_path: Path) -> None:
    runtime = FailingRuntime()
    sup = Supervisor(runtime, Ledger(tmp_path / "l.jsonl"), EventBus())
    target = NodeTarget("n0", NsPaths.under(tmp_path, "n0"), (tmp_path / "cg" / "cgroup.procs",))
    daemon = sup.start(DaemonSpec("slurmd", "n0", ("slurmd",), tmp_path / "log"), target)
    daemon.started_at -= 3600  # it ran for an hour: its first exit starts a fresh count
    runtime.broken = True
    assert daemon.record is not None
    runtime.crash(daemon.record.pid)
    sup._on_exit(daemon)
    for _ in range(FATAL_AFTER):
        if daemon.state is DaemonState.BACKOFF:
            daemon.next_start = time.monotonic() - 1
            sup._restart_due()
    assert daemon.state is DaemonState.FATAL
