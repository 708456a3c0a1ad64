"""Teardown at scale (issue 12): the namespace pins go with their directory in one call
when the whole cluster goes, only a node's own pins when one node goes; a whole cluster's
daemons end with their node's init; a cgroup that cannot be emptied is not removed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.unit.fake_runtime import FakeRuntime
from vhpc.cluster import teardown
from vhpc.cluster.ledger import Kind, Ledger
from vhpc.cluster.teardown import remove_owned
from vhpc.errors import VhpcError
from vhpc.runtime import namespaces
from vhpc.runtime.proc import ProcessRecord


class RecordingRuntime(FakeRuntime):
    """The fake, remembering each release_mounts and terminate call."""

    def __init__(self) -> None:
        super().__init__()
        self.releases: list[list[Path]] = []
        self.terminated: list[list[int]] = []

    def release_mounts(self, paths: list[Path]) -> None:
        self.releases.append(paths)
        super().release_mounts(paths)

    def terminate(self, records: list[ProcessRecord], grace: float = 5.0) -> None:
        self.terminated.append([r.pid for r in records])
        super().terminate(records, grace)


def pinned_cluster(tmp_path: Path, runtime: FakeRuntime) -> tuple[Ledger, Path]:
    """A ledger with an ns directory (a mount) holding two nodes' pins."""
    ledger = Ledger(tmp_path / "ledger.jsonl")
    ns_dir = tmp_path / "ns"
    ledger.add(Kind.MOUNT, ns_dir)
    runtime.make_private_dir(ns_dir)
    for node in ("n0", "n1"):
        for kind in namespaces.NS_KINDS:
            pin = ns_dir / f"{node}.{kind}"
            ledger.add(Kind.NAMESPACE, pin, node)
            runtime.mounts.add(pin)
    return ledger, ns_dir


def test_whole_cluster_releases_the_pins_with_their_directory(tmp_path: Path) -> None:
    runtime = RecordingRuntime()
    ledger, ns_dir = pinned_cluster(tmp_path, runtime)
    assert remove_owned(ledger, runtime) == []
    assert len(runtime.releases) == 1
    assert runtime.releases[0][0] == ns_dir  # the directory first, in the same call
    assert ledger.entries() == []


def test_one_node_releases_only_its_own_pins(tmp_path: Path) -> None:
    runtime = RecordingRuntime()
    ledger, ns_dir = pinned_cluster(tmp_path, runtime)
    assert remove_owned(ledger, runtime, "n0") == []
    released = [p for call in runtime.releases for p in call]
    assert ns_dir not in released
    assert sorted(p.name for p in released) == sorted(f"n0.{k}" for k in namespaces.NS_KINDS)
    assert {e.kind for e in ledger.entries()} == {Kind.MOUNT, Kind.NAMESPACE}
    assert all(e.node in ("", "n1") for e in ledger.entries())


def add_process(ledger: Ledger, runtime: FakeRuntime, key: str, node: str) -> int:
    pid = 100 + len(runtime.processes)
    runtime.processes[pid] = ProcessRecord(pid, 1)
    ledger.add(Kind.PROCESS, key, node, pid=pid, starttime=1)
    return pid


def test_whole_cluster_daemons_go_with_their_init(tmp_path: Path) -> None:
    runtime = RecordingRuntime()
    ledger = Ledger(tmp_path / "ledger.jsonl")
    manager = add_process(ledger, runtime, "manager", "")
    init = add_process(ledger, runtime, "init@slurm", "slurm")
    ctld = add_process(ledger, runtime, "slurmctld@slurm", "slurm")
    runtime.ends_with[init] = [ctld]
    assert remove_owned(ledger, runtime) == []
    # the manager alone first; slurmctld is not stopped on its own: it ends with its
    # node's init (a PID namespace ends with its pid 1), is waited for, its record goes
    assert [c for c in runtime.terminated if c] == [[manager], [init]]
    assert ctld not in runtime.processes
    assert ledger.entries() == []


def test_whole_cluster_down_reports_a_daemon_that_outlives_its_init(tmp_path: Path) -> None:
    runtime = RecordingRuntime()
    ledger = Ledger(tmp_path / "ledger.jsonl")
    add_process(ledger, runtime, "init@slurm", "slurm")
    ctld = add_process(ledger, runtime, "slurmctld@slurm", "slurm")  # not in its PID ns
    (left,) = remove_owned(ledger, runtime)
    assert left.startswith(f"process {ctld} ") and "still running" in left


def test_one_node_daemons_stop_before_its_init(tmp_path: Path) -> None:
    runtime = RecordingRuntime()
    ledger = Ledger(tmp_path / "ledger.jsonl")
    init = add_process(ledger, runtime, "init@c0", "c0")
    slurmd = add_process(ledger, runtime, "slurmd@c0", "c0")
    assert remove_owned(ledger, runtime, "c0") == []
    assert [c for c in runtime.terminated if c] == [[slurmd], [init]]


class StuckCgroupRuntime(FakeRuntime):
    """A cgroup whose processes never die."""

    def __init__(self) -> None:
        super().__init__()
        self.removed: list[Path] = []

    def kill_cgroup(self, group: str) -> None:
        if group == "stuck":
            raise VhpcError("processes [1] in cgroup stuck did not die")
        super().kill_cgroup(group)

    def cgroup_dirs(self, group: str) -> list[Path]:
        return [Path("/cg") / group]

    def remove_cgroup_dir(self, path: Path) -> None:
        self.removed.append(path)


def test_a_cgroup_that_cannot_be_emptied_stays(tmp_path: Path) -> None:
    runtime = StuckCgroupRuntime()
    ledger = Ledger(tmp_path / "ledger.jsonl")
    for group in ("stuck", "fine"):
        ledger.add(Kind.CGROUP, group)
    assert remove_owned(ledger, runtime) == ["cgroup stuck"]
    assert runtime.removed == [Path("/cg/fine")]
    assert [e.ident for e in ledger.entries()] == ["stuck"]


@pytest.fixture
def umounts(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Path]]:
    """release_all's system calls, faked: which paths were unmounted, which released
    on their own; a path named 'unmounted*' is not a mount point."""
    calls: dict[str, list[Path]] = {"umount": [], "release": []}

    def umount_each(paths: list[Path]) -> list[Path]:
        calls["umount"] += paths
        return [p for p in paths if p.name.startswith("unmounted")]

    monkeypatch.setattr(namespaces, "umount_each", umount_each)
    monkeypatch.setattr(namespaces, "release", calls["release"].append)
    return calls


def _pinned_dir(ns_dir: Path, count: int) -> list[Path]:
    """A namespace directory holding `count` pin files; the pins."""
    ns_dir.mkdir()
    pins = [ns_dir / f"n{i}.net" for i in range(count)]
    for pin in pins:
        pin.touch()
    return pins


def test_release_all_unmounts_a_directory_before_and_instead_of_its_pins(
        tmp_path: Path, umounts: dict[str, list[Path]]) -> None:
    ns_dir = tmp_path / "ns"
    pins = _pinned_dir(ns_dir, 3)
    outside = tmp_path / "other.net"
    outside.touch()
    namespaces.release_all([*pins, outside, ns_dir])
    assert sorted(umounts["umount"]) == sorted([ns_dir, outside])  # no pin of ns_dir
    assert all(p.exists() for p in pins)  # left in the directory, which goes as a whole
    assert not outside.exists()


def test_release_all_unpins_each_below_a_directory_that_was_not_mounted(
        tmp_path: Path, umounts: dict[str, list[Path]]) -> None:
    ns_dir = tmp_path / "unmounted-ns"
    pins = _pinned_dir(ns_dir, 2)
    namespaces.release_all([*pins, ns_dir])
    assert umounts["umount"] == [ns_dir, *pins]
    assert umounts["release"] == [ns_dir]
    assert not any(p.exists() for p in pins)


def test_v1_finds_a_nodes_processes_in_one_hierarchy(tmp_path: Path) -> None:
    from vhpc.runtime.cgroups import CgroupV1

    for controller, procs in (("pids", {"": "11\n12\n"}),
                              ("memory", {"": "11\n", "slurm/job_1": "12\n"})):
        for sub, text in procs.items():
            d = tmp_path / controller / "vhpc-x" / "n0" / sub
            d.mkdir(parents=True, exist_ok=True)
            (d / "cgroup.procs").write_text(text)
    (tmp_path / "pids" / "vhpc-x" / "n0" / "cgroup.procs").write_text("11\n12\n13\n")
    driver = CgroupV1(tmp_path)
    assert driver.member_pids("vhpc-x/n0") == [11, 12, 13]  # the pids hierarchy's
    assert driver.pids("vhpc-x/n0") == [11, 12, 13]  # every hierarchy's
    for d in sorted((tmp_path / "pids").rglob("*"), reverse=True):
        d.unlink() if d.is_file() else d.rmdir()
    assert driver.member_pids("vhpc-x/n0") == [11, 12]  # no pids hierarchy: memory's
    assert driver.member_pids("vhpc-x/gone") == []



def test_a_killed_child_is_reaped_and_reported_gone() -> None:
    import signal
    import subprocess

    from vhpc.runtime.linux import LinuxRuntime
    from vhpc.runtime.proc import record_of

    child = subprocess.Popen(["sleep", "30"])
    record = record_of(child.pid)
    assert record is not None
    os.kill(child.pid, signal.SIGKILL)
    assert LinuxRuntime().wait_gone([record], timeout=5.0) == []
    with pytest.raises(ChildProcessError):  # reaped: no zombie left for an init to wait on
        os.waitpid(child.pid, os.WNOHANG)
    child.returncode = -9  # Popen's own bookkeeping


def test_a_process_that_does_not_end_is_reported() -> None:
    from vhpc.runtime.linux import LinuxRuntime
    from vhpc.runtime.proc import record_of

    record = record_of(os.getpid())
    assert record is not None
    assert LinuxRuntime().wait_gone([record], timeout=0.05) == [record]
    assert teardown._wait_gone(FakeRuntime(), []) == []
