"""Supervisor state machine and restart with backoff, against the fake runtime."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.unit.fake_runtime import FakeRuntime
from vhpc.cluster.events import EventBus
from vhpc.cluster.ledger import Kind, Ledger
from vhpc.cluster.states import DaemonState, TransitionError, check_transition
from vhpc.cluster.supervisor import Supervised, Supervisor
from vhpc.runtime.namespaces import NsPaths
from vhpc.runtime.spawn import NodeTarget
from vhpc.services.base import DaemonSpec


def state_of(daemon: Supervised) -> DaemonState:
    """The daemon's state, read anew (mypy would keep an earlier assert's narrowing)."""
    return daemon.state


def test_transitions_are_guarded() -> None:
    check_transition(DaemonState.RUNNING, DaemonState.BACKOFF)
    with pytest.raises(TransitionError):
        check_transition(DaemonState.STOPPED, DaemonState.BACKOFF)


def test_crashed_daemon_is_restarted_then_stopped_on_purpose(tmp_path: Path) -> None:
    runtime = FakeRuntime()
    ledger = Ledger(tmp_path / "ledger.jsonl")
    events = EventBus()
    sup = Supervisor(runtime, ledger, events)
    target = NodeTarget("n0", NsPaths.under(tmp_path, "n0"), (tmp_path / "cg" / "cgroup.procs",))
    spec = DaemonSpec("slurmd", "n0", ("slurmd", "-D"), tmp_path / "log")
    daemon = sup.start(spec, target)
    assert daemon.state is DaemonState.RUNNING
    first = daemon.record
    assert first is not None
    assert ledger.entries(Kind.PROCESS)[0].data["pid"] == first.pid
    # The fake has no pidfd to signal an exit: drive the exit handler directly.
    runtime.crash(first.pid)
    sup._on_exit(daemon)
    assert state_of(daemon) is DaemonState.BACKOFF
    assert daemon.next_start is not None
    daemon.next_start = time.monotonic() - 1
    sup._restart_due()
    assert daemon.state is DaemonState.RUNNING and daemon.restarts == 1
    assert daemon.record is not None and daemon.record.pid != first.pid
    assert [e.kind for e in events.recent()] == ["daemon_exit", "daemon_restart"]
    sup.stop(spec.key, grace=0)
    assert state_of(daemon) is DaemonState.STOPPED
    assert ledger.entries(Kind.PROCESS) == []


def test_daemon_that_keeps_failing_goes_fatal(tmp_path: Path) -> None:
    runtime = FakeRuntime()
    sup = Supervisor(runtime, Ledger(tmp_path / "l.jsonl"), EventBus(), fatal_after=2)
    target = NodeTarget("n0", NsPaths.under(tmp_path, "n0"), (tmp_path / "cg" / "cgroup.procs",))
    daemon = sup.start(DaemonSpec("munged", "n0", ("munged",), tmp_path / "log"), target)
    for _ in range(3):
        assert daemon.record is not None
        runtime.crash(daemon.record.pid)
        sup._on_exit(daemon)
        if daemon.state is DaemonState.BACKOFF:
            daemon.next_start = time.monotonic() - 1
            sup._restart_due()
    assert daemon.state is DaemonState.FATAL


def test_a_daemon_on_every_steps_path_gets_its_session_weight_at_each_start(
        tmp_path: Path) -> None:
    runtime = FakeRuntime()
    sup = Supervisor(runtime, Ledger(tmp_path / "l.jsonl"), EventBus())
    target = NodeTarget("n0", NsPaths.under(tmp_path, "n0"), (tmp_path / "cg" / "cgroup.procs",))
    weighted = DaemonSpec("munged", "n0", ("munged", "-F"), tmp_path / "m.log", session_nice=-20)
    plain = DaemonSpec("slurmd", "n0", ("slurmd", "-D"), tmp_path / "s.log")
    daemon = sup.start(weighted, target)
    [other] = sup.start_many([(plain, target)])
    assert daemon.record is not None and other.record is not None
    assert runtime.session_nices == {daemon.record.pid: -20}
    runtime.crash(daemon.record.pid)
    sup._on_exit(daemon)
    daemon.next_start = time.monotonic() - 1
    sup._restart_due()
    assert daemon.record is not None and runtime.session_nices[daemon.record.pid] == -20


def test_the_services_on_a_launch_path_are_weighted() -> None:
    from tests.unit.cli_fakes import make_spec
    from vhpc.services import dnsmasq, mariadb, munge, slurm, slurmdbd
    from vhpc.services.base import RPC_PATH_NICE
    from vhpc.spec.paths import ClusterPaths

    spec = make_spec("w", 1)
    paths = ClusterPaths.of("w")
    dns = next(n for n in spec.nodes if n.name == "dns")
    assert munge.daemon(paths, "slurm").session_nice == RPC_PATH_NICE
    assert dnsmasq.daemon(spec, paths, dns).session_nice == RPC_PATH_NICE
    assert slurm.slurmctld(spec, paths).session_nice == RPC_PATH_NICE
    assert mariadb.daemon(paths, "db").session_nice == RPC_PATH_NICE  # the boot's chain
    assert slurmdbd.daemon(paths, "db").session_nice == RPC_PATH_NICE
    assert slurm.slurmd(spec, paths, spec.computes[0]).session_nice is None
