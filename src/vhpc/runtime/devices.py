"""A node's own /dev: a directory of device files made on the host, bind-mounted over /dev.

Given to nodes with fake GPUs (their `nvidia0`.. must exist in /dev for slurmd, and no
other node or the host may see them). It holds what programs expect of /dev (null, zero,
full, random, urandom, tty, ptmx, the fd symlinks, mount points for pts, shm and mqueue)
and the GPU devices: character devices with /dev/null's numbers, as GPU emulators do (open,
read and write work; nothing is behind them). The standard devices have the numbers
Linux fixes for them (Documentation/admin-guide/devices.txt).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

#: (major, minor) of /dev/null: what every fake GPU device is.
NULL_DEVICE = (1, 3)
STANDARD_DEVICES: dict[str, tuple[int, int]] = {
    "null": (1, 3), "zero": (1, 5), "full": (1, 7), "random": (1, 8), "urandom": (1, 9),
    "tty": (5, 0), "ptmx": (5, 2),
}
STANDARD_LINKS = {
    "fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1",
    "stderr": "/proc/self/fd/2",
}
#: Mount points inside /dev: the host's devpts (ptmx opens its `pts` sibling), the node's
#: /dev/shm and POSIX message queues.
MOUNT_DIRS = {"pts": 0o755, "shm": 0o1777, "mqueue": 0o1777}


@dataclass(frozen=True)
class DevEntry:
    """One entry of a node's /dev: a character device, a symlink or a directory."""

    name: str
    kind: str  # "char", "link" or "dir"
    major: int = 0
    minor: int = 0
    target: str = ""
    mode: int = 0o666


def node_dev_entries(gpu_names: list[str]) -> list[DevEntry]:
    """Everything a node's /dev holds, its GPU devices (e.g. nvidia0, nvidia1) included."""
    entries = [DevEntry(name, "char", major, minor) for name, (major, minor)
               in STANDARD_DEVICES.items()]
    entries += [DevEntry(name, "link", target=target) for name, target
                in STANDARD_LINKS.items()]
    entries += [DevEntry(name, "dir", mode=mode) for name, mode in MOUNT_DIRS.items()]
    entries += [DevEntry(name, "char", *NULL_DEVICE) for name in gpu_names]
    return entries


def make_dev_dir(path: Path, entries: list[DevEntry]) -> None:
    """Create the directory and its entries (idempotent: existing entries are kept)."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o755)
    for entry in entries:
        target = path / entry.name
        if os.path.lexists(target):
            continue
        if entry.kind == "char":
            os.mknod(target, stat.S_IFCHR | entry.mode, os.makedev(entry.major, entry.minor))
            target.chmod(entry.mode)  # mknod applies the umask
        elif entry.kind == "link":
            target.symlink_to(entry.target)
        else:
            target.mkdir()
            target.chmod(entry.mode)
