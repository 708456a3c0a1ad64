"""write_atomic: the old content or the new, never half; and the state writers use it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from vhpc.atomic import write_atomic

SRC = Path(__file__).resolve().parents[2] / "src" / "vhpc"


def test_replaces_the_content_with_the_mode_asked_and_leaves_no_temp_file(
        tmp_path: Path) -> None:
    target = tmp_path / "spec.json"
    target.write_text("old")
    write_atomic(target, '{"new": 1}\n', 0o600)
    assert target.read_text() == '{"new": 1}\n'
    assert target.stat().st_mode & 0o777 == 0o600
    write_atomic(target, b"\x00bytes")
    assert target.read_bytes() == b"\x00bytes" and target.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["spec.json"]


def test_a_failed_rename_keeps_the_old_file_and_cleans_up(tmp_path: Path) -> None:
    target = tmp_path / "hosts"
    target.mkdir()  # renaming a file over a directory fails
    (target / "keep").write_text("x")
    with pytest.raises(OSError):
        write_atomic(target, "new")
    assert (target / "keep").read_text() == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hosts"]


def test_the_new_inode_is_complete_before_it_has_the_name(tmp_path: Path) -> None:
    target = tmp_path / "slurm.conf"
    target.write_text("A" * 10)
    before = target.stat().st_ino
    write_atomic(target, "B" * 100_000)
    assert target.stat().st_ino != before  # renamed over, not rewritten in place
    assert target.read_text() == "B" * 100_000


@pytest.mark.parametrize("package", ["cluster", "services"])
def test_state_files_of_the_cluster_layers_are_only_written_atomically(package: str) -> None:
    in_place = re.compile(r"\.write_(text|bytes)\(|(?<!fd)open\([^)]*['\"]w")
    offenders = [f"{path.relative_to(SRC)}:{n}"
                 for path in sorted((SRC / package).rglob("*.py"))
                 for n, line in enumerate(path.read_text().splitlines(), 1)
                 if in_place.search(line)]
    assert offenders == []
