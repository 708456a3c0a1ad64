"""`vhpc clean` removes the trash an interrupted `down` left (runtime/trash_sweep.py): by
the name trash.py gives it, one cluster's or (with --all) everyone's, nothing else."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from vhpc import control
from vhpc.cli.main import cli
from vhpc.runtime import trash_sweep
from vhpc.runtime.trash import trash_name

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="vhpc clean is root's")


def _trash(root: Path, cluster: str) -> Path:
    """What `down` leaves when its background `rm` never ran: the renamed state dir."""
    path = trash_name(root / cluster)
    (path / "log").mkdir(parents=True)
    (path / "log" / "slurmd.compute0.log").write_text("ok\n")
    return path


def _decoys(root: Path) -> list[Path]:
    """Names close to trash that vhpc did not make: never touched."""
    outside = root.parent / "not-vhpc"
    outside.mkdir()
    (outside / "keep").write_text("precious\n")
    decoys = [root / ".trash-notes", root / ".trash-lab-x-1", root / ".trash-lab-1",
              root / "lab", root / ".trash-Lab-1-2"]
    for path in decoys:
        path.mkdir()
    (root / ".trash-lab-3-4-file").write_text("")
    (root / ".trash-lab-5-6").symlink_to(outside)
    return [*decoys, root / ".trash-lab-3-4-file", root / ".trash-lab-5-6", outside / "keep"]


def test_the_name_says_whose_trash_it_is(tmp_path: Path) -> None:
    for cluster in ("lab", "lab-b", "lab-1", "a-1-2"):
        assert trash_sweep.owner_of(trash_name(tmp_path / cluster)) == cluster
    for name in (".trash-notes", ".trash-lab", ".trash-lab-1", ".trash-lab-x-1", "lab",
                 ".trash--1-2", ".trash-Lab-1-2", ".failed"):
        assert trash_sweep.owner_of(tmp_path / name) is None


def test_one_clusters_trash_only_and_never_a_lookalike(tmp_path: Path) -> None:
    root = tmp_path / "state"
    root.mkdir()
    lab, lab_b, lab_1 = _trash(root, "lab"), _trash(root, "lab-b"), _trash(root, "lab-1")
    decoys = _decoys(root)
    assert trash_sweep.trash_of("lab", root) == [lab]
    assert trash_sweep.remove_trash("lab", root) == [lab]
    assert not lab.exists() and lab_b.exists() and lab_1.exists()
    assert sorted(trash_sweep.remove_trash(None, root)) == sorted([lab_b, lab_1])
    assert all(p.exists() or p.is_symlink() for p in decoys)
    assert trash_sweep.remove_trash(None, tmp_path / "none") == []


@needs_root
def test_vhpc_clean_removes_the_clusters_trash_and_all_with_all(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VHPC_STATE_ROOT", str(tmp_path))
    mine, other = _trash(tmp_path, "hlmine"), _trash(tmp_path, "hlother")
    (mine / "ledger.jsonl").write_text("")  # a crash before `first` went: no cluster
    assert control.list_clusters() == []
    out = CliRunner().invoke(cli, ["-c", "hlmine", "clean"])
    assert out.exit_code == 0, out.output
    assert f"removed trash {mine}" in out.output
    assert not mine.exists() and other.exists()
    out = CliRunner().invoke(cli, ["clean", "--all"])
    assert out.exit_code == 0, out.output
    assert f"removed trash {other}" in out.output and not other.exists()
