"""Logs kept after a failed boot or `down --keep-logs` (cluster/kept_logs.py), and the
rollback that keeps them (with the fake runtime)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.unit.fake_runtime import FakeRuntime
from vhpc.cluster import kept_logs
from vhpc.cluster.cluster import Cluster
from vhpc.cluster.ledger import Kind, Ledger
from vhpc.cluster.teardown import remove_owned
from vhpc.errors import BootError
from vhpc.spec.load import ClusterOptions, HostFacts, build_spec
from vhpc.spec.paths import ClusterPaths
from vhpc.spec.sizes import MIB

HOST = HostFacts(online_cpus=(0, 1), mem_total=24 * 1024 * MIB)
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="writes files owned by cluser (chown)")


def _cluster_with_logs(root: Path, name: str) -> ClusterPaths:
    paths = ClusterPaths(root / name)
    (paths.log / "console").mkdir(parents=True)
    (paths.log / "slurmd.compute0.log").write_text("error: cannot register\n")
    (paths.log / "console" / "compute0.log").write_text("boot\n")
    paths.spec.write_text("{}")
    return paths


def test_keep_moves_the_logs_and_the_spec_into_a_private_directory(tmp_path: Path) -> None:
    paths = _cluster_with_logs(tmp_path, "lab")
    kept = kept_logs.keep(paths, "lab", "BootError: nodes not idle")
    assert kept is not None and kept.parent == tmp_path / ".failed"
    assert kept.name.startswith("lab-") and kept.stat().st_mode & 0o777 == 0o700
    assert (kept / "slurmd.compute0.log").read_text() == "error: cannot register\n"
    assert (kept / "console" / "compute0.log").exists() and (kept / "spec.json").exists()
    assert (kept / "error.txt").read_text() == "BootError: nodes not idle\n"
    assert not any(paths.log.iterdir())  # moved, not copied


def test_two_keeps_in_one_second_get_two_directories(tmp_path: Path) -> None:
    first = kept_logs.keep(_cluster_with_logs(tmp_path, "lab"), "lab")
    second = kept_logs.keep(_cluster_with_logs(tmp_path / "other", "lab"), "lab")
    assert first is not None and second is not None and first != second


def test_remove_kept_takes_only_that_clusters_directories(tmp_path: Path) -> None:
    for name in ("lab", "lab-b"):
        kept_logs.keep(_cluster_with_logs(tmp_path / name, name), name)
    # the same state root for both: keep() puts them under <root>/.failed
    root = tmp_path / "lab"
    assert [p.name.startswith("lab-") for p in kept_logs.kept_of("lab", root)] == [True]
    (root / ".failed" / "lab-b-20260101T000000Z").mkdir()
    (root / ".failed" / "notes").mkdir()  # not a kept directory: never touched
    removed = kept_logs.remove_kept("lab", root)
    assert len(removed) == 1 and not removed[0].exists()
    assert sorted(p.name for p in (root / ".failed").iterdir()) == [
        "lab-b-20260101T000000Z", "notes"]
    assert [p.name for p in kept_logs.remove_kept(None, root)] == ["lab-b-20260101T000000Z"]


def test_no_log_directory_keeps_nothing(tmp_path: Path) -> None:
    assert kept_logs.keep(ClusterPaths(tmp_path / "gone"), "gone") is None
    assert kept_logs.kept_of("gone", tmp_path) == []


def test_teardown_keeps_the_logs_after_the_processes_before_the_directories(
        tmp_path: Path) -> None:
    runtime = FakeRuntime()
    ledger = Ledger(tmp_path / "ledger.jsonl")
    ledger.add(Kind.PROCESS, "slurmd@n0", "n0", pid=0, starttime=-1)
    state = tmp_path / "state"
    state.mkdir()
    ledger.add(Kind.DIRECTORY, str(state))
    seen: list[tuple[bool, list[str]]] = []
    remove_owned(ledger, runtime, before_directories=lambda: seen.append(
        (state.exists(), [e.ident for e in ledger.entries(Kind.PROCESS)])))
    assert seen == [(True, [])]
    assert not state.exists()


@needs_root
def test_a_failed_boot_keeps_its_logs_and_names_them(tmp_path: Path) -> None:
    runtime = FakeRuntime(fail_on_namespace="dns")
    spec = build_spec(ClusterOptions(name="fk", nodes=2, accounting=False), HOST)
    cluster = Cluster(spec, ClusterPaths(tmp_path / "fk"), runtime)
    with pytest.raises(BootError, match="injected failure") as err:
        cluster.boot(timeout=1)
    kept = kept_logs.kept_of("fk", tmp_path)
    assert len(kept) == 1 and str(kept[0]) in str(err.value)
    assert "'vhpc -c fk clean' removes them" in str(err.value)
    assert "injected failure" in (kept[0] / "error.txt").read_text()
    assert runtime.owned() == {}
    assert not (tmp_path / "fk").exists()
