"""ext4's top-directory flag on vhpc's state directories (runtime/spread_dirs.py)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from vhpc.runtime.spread_dirs import make_dir, spread_subdirectories


def attributes(path: Path) -> str | None:
    """The inode attributes `lsattr -d` shows, None where the file system has none."""
    done = subprocess.run(["lsattr", "-d", str(path)], capture_output=True, text=True,
                          check=False)
    return done.stdout.split()[0] if done.returncode == 0 and done.stdout else None


def test_a_directory_is_marked_for_the_allocator(tmp_path: Path) -> None:
    marked = spread_subdirectories(tmp_path)
    shown = attributes(tmp_path)
    if shown is None:
        pytest.skip("this file system has no inode attributes")
    assert marked == ("T" in shown)  # what lsattr shows is what the call says
    if marked:
        assert spread_subdirectories(tmp_path)  # marking it again changes nothing
        assert attributes(tmp_path) == shown


def test_what_is_no_directory_is_left_alone(tmp_path: Path) -> None:
    plain = tmp_path / "file"
    plain.write_text("x")
    assert not spread_subdirectories(plain)
    assert not spread_subdirectories(tmp_path / "missing")
    link = tmp_path / "link"
    link.symlink_to(tmp_path)
    assert not spread_subdirectories(link)


def test_a_directory_is_made_under_its_name_with_nothing_else_left(tmp_path: Path) -> None:
    target = tmp_path / "parent" / "cluster"
    make_dir(target)
    assert target.is_dir()
    assert sorted(p.name for p in target.parent.iterdir()) == ["cluster"]
    (target / "kept").write_text("x")
    make_dir(target)  # there already: left as it is
    assert (target / "kept").read_text() == "x"


def test_what_a_crash_before_the_rename_leaves_is_the_clusters_trash(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vhpc.runtime import trash_sweep

    def killed(*_: object) -> None:
        raise KeyboardInterrupt  # the process ends between the mkdir and the rename

    monkeypatch.setattr(os, "rename", killed)
    with pytest.raises(KeyboardInterrupt):
        make_dir(tmp_path / "lab")
    monkeypatch.undo()
    left = trash_sweep.trash_of("lab", tmp_path)
    assert len(left) == 1 and not (tmp_path / "lab").exists()  # `vhpc clean -c lab`'s
    assert trash_sweep.remove_trash("lab", tmp_path) == left
    assert list(tmp_path.iterdir()) == []
