"""Directories whose new subdirectories ext4 spreads over its block groups (the Orlov
allocator's "top directory" flag, `chattr +T`).

Every boot creates ~600 files under its cluster's directory and every `down` deletes them.
Without the flag, ext4 puts each new cluster directory in its parent's block group, so all
clusters share one group. On ext4 without a journal (these machines' root file system),
the inode allocator skips every inode deleted in the last minutes, reading its inode
table block each time: after a few up/down cycles, creating a file in that group took
0.7-0.8 ms instead of ~30 us (300 files: 200-250 ms against 10 ms with the flag), ~17% of
a 16-node boot's CPU. With the flag each new cluster directory (template, image) goes to a
group with free inodes. Other file systems refuse the flag: nothing changes there.

ext4 picks that group starting from a hash of the new directory's name, so a cluster
booted again under its name would go back to the group its last `down` filled with
deleted inodes: `make_dir` makes it under another name and renames it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import struct
from pathlib import Path

from vhpc.runtime.trash import trash_name

#: linux/fs.h: the inode flags ioctls (their argument is an int) and the flag
FS_IOC_GETFLAGS = 0x80086601
FS_IOC_SETFLAGS = 0x40086602
FS_TOPDIR_FL = 0x00020000


def spread_subdirectories(path: Path) -> bool:
    """Mark directory `path` as a top directory for ext4's allocator; whether it is one
    now (False where the file system has no such flag, or without the right to set it)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        with contextlib.suppress(OSError):
            flags = struct.unpack("i", fcntl.ioctl(fd, FS_IOC_GETFLAGS, bytes(4)))[0]
            if not flags & FS_TOPDIR_FL:
                fcntl.ioctl(fd, FS_IOC_SETFLAGS, struct.pack("i", flags | FS_TOPDIR_FL))
            return True
        return False
    finally:
        os.close(fd)


def make_dir(path: Path) -> None:
    """`mkdir -p path`, the last directory made under another name, then renamed.

    That name is the one `down` gives the directory as it goes (runtime/trash.py: unique
    per process and time, so random enough for ext4), so that `vhpc clean` removes it if
    a crash comes between the two steps."""
    if path.is_dir():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fresh = trash_name(path)
    fresh.mkdir()
    try:
        os.rename(fresh, path)
    except OSError:
        fresh.rmdir()
        if not path.is_dir():
            raise
