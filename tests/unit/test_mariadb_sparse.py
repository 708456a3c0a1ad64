"""The accounting template's zeros become holes once, and copies keep them
(services/mariadb.py make_sparse, copy_template)."""

from __future__ import annotations

import os
from pathlib import Path

from vhpc.services import mariadb


def _allocated(path: Path) -> int:
    return os.stat(path).st_blocks * 512


def test_a_template_is_made_sparse_once_and_its_copy_stays_sparse(tmp_path: Path) -> None:
    template = tmp_path / "tpl"
    template.mkdir()
    big = template / "ibdata1"
    big.write_bytes(b"x" * 4096 + bytes(4 << 20) + b"y" * 4096)
    small = template / "small.frm"
    small.write_bytes(bytes(8192))
    assert _allocated(big) >= 4 << 20

    mariadb.copy_template(template, tmp_path / "data")

    copy = tmp_path / "data" / "ibdata1"
    assert copy.read_bytes() == big.read_bytes()
    assert _allocated(big) < 1 << 20 and _allocated(copy) < 1 << 20
    assert (tmp_path / "data" / "small.frm").read_bytes() == bytes(8192)
    markers = list(tmp_path.glob(".tpl.*.sparse"))
    assert len(markers) == 1

    big.write_bytes(bytes(2 << 20))  # a marked template is not dug again
    mariadb.make_sparse(template)
    assert _allocated(big) >= 2 << 20
