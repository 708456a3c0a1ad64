"""Unmount many paths with one umount(2) system call each.

`umount(8)` given thousands of paths parses /proc/self/mountinfo once per path, and the
table holds those thousands of mounts: releasing the 6144 namespace pins of 1024 nodes
took minutes (10 s for 256 nodes). The system call needs no table at all.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

_libc = ctypes.CDLL(None, use_errno=True)


def umount_each(paths: list[Path]) -> list[Path]:
    """umount(2) every path; return those it failed for (not mounted, busy, ...)."""
    failed = []
    for path in paths:
        if _libc.umount2(os.fsencode(str(path)), 0) != 0:
            failed.append(path)
    return failed
