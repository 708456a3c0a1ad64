"""Mount system calls made directly (no `mount(8)` or `mountpoint(1)` process).

Each boot makes its cluster's private namespace directory (namespaces.make_private_dir):
three util-linux processes in turn took ~10 ms on the path of every `vhpc up`.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

_libc = ctypes.CDLL(None, use_errno=True)
MS_NOSUID, MS_NODEV, MS_NOEXEC = 0x2, 0x4, 0x8  # <sys/mount.h>
MS_PRIVATE = 1 << 18


def _mount(source: str | None, target: Path, flags: int, what: str,
           fstype: str | None = None, data: str | None = None) -> None:
    def raw(text: str | None) -> bytes | None:
        return None if text is None else os.fsencode(text)

    if _libc.mount(raw(source), os.fsencode(str(target)), raw(fstype), flags, raw(data)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what} {target}: {os.strerror(err)}")


def mount_tmpfs(path: Path, name: str, options: str) -> None:
    """`mount -t tmpfs -o OPTIONS NAME PATH`, not executable, no devices, no setuid."""
    _mount(name, path, MS_NOSUID | MS_NODEV | MS_NOEXEC, "tmpfs mount", "tmpfs", options)


def make_private(path: Path) -> None:
    """`mount --make-private PATH` (PATH must be a mount point)."""
    _mount(None, path, MS_PRIVATE, "make private")


def is_mount_point(path: Path, mountinfo: Path = Path("/proc/self/mountinfo")) -> bool:
    """True if `path` (absolute, no symlinks) is a mount point of this mount namespace; a
    bind mount of a directory onto itself counts, which os.path.ismount misses."""
    wanted = str(path)
    with open(mountinfo, encoding="utf-8", errors="surrogateescape") as f:
        return any(_unescape(line.split(" ", 5)[4]) == wanted for line in f)


#: the characters mountinfo writes as octal escapes
_ESCAPES = {"\\040": " ", "\\011": "\t", "\\012": "\n", "\\134": "\\"}


def _unescape(field: str) -> str:
    for escaped, char in _ESCAPES.items():
        field = field.replace(escaped, char)
    return field
