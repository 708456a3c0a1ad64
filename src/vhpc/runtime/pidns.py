"""Fork straight into a node's PID namespace, and pin namespaces, without helper processes.

`setns(fd, CLONE_NEWPID)` (or `unshare(CLONE_NEWPID)`) changes only the namespace the
calling *thread's* next children start in, so a thread can fork a daemon directly into a
node: the pid the parent gets back is the daemon's own host pid, with no `nsenter`
parent left waiting (nsenter has to fork to enter a PID namespace). The thread switches
back to its own namespace when the block ends. Python 3.11 has no os.setns, hence ctypes.
"""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CLONE_NEWPID = 0x20000000
MS_BIND = 0x1000
MNT_DETACH = 2

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


@contextmanager
def children_in(ns_file: Path | None) -> Iterator[None]:
    """Processes this thread forks in the block start in `ns_file`'s PID namespace.

    `None` makes a new PID namespace: the first process forked in the block is its init
    (pid 1); the namespace lives as long as that process does.
    """
    own = os.open("/proc/thread-self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if ns_file is None:
            _check(_libc.unshare(CLONE_NEWPID), "unshare(CLONE_NEWPID)")
        else:
            fd = os.open(ns_file, os.O_RDONLY | os.O_CLOEXEC)
            try:
                _check(_libc.setns(fd, CLONE_NEWPID), f"setns({ns_file})")
            finally:
                os.close(fd)
        try:
            yield
        finally:
            _check(_libc.setns(own, CLONE_NEWPID), "setns(back to the host PID namespace)")
    finally:
        os.close(own)


def pin(pid: int, kind: str, target: Path) -> None:
    """Bind-mount /proc/<pid>/ns/<kind> onto `target`: the namespace outlives the process.

    (A PID namespace stays usable only while its init lives; the pin keeps it nameable.)
    """
    source = f"/proc/{pid}/ns/{kind}".encode()
    _check(_libc.mount(source, str(target).encode(), None, MS_BIND, None),
           f"bind {source.decode()} on {target}")


def unpin(target: Path) -> None:
    """Detach the pin on `target` (a bind-mounted namespace file); not pinned is fine."""
    if _libc.umount2(str(target).encode(), MNT_DETACH) != 0:
        err = ctypes.get_errno()
        if err != errno.EINVAL:  # EINVAL: not a mount point
            raise OSError(err, f"umount {target}: {os.strerror(err)}")
