"""Atomic file writes: a reader sees the old file or the new one, never half of either.

Every state file vhpc re-reads (spec.json, the operation record, the token, the dashboard
port, hosts files, rendered configs, dnsmasq's hosts directory) is written through
:func:`write_atomic`: a temporary file in the same directory, renamed over the target.
A crash of the writing process at any point leaves the previous content.

No fsync by default: a cluster lives in the kernel (namespaces, cgroups, processes) and
dies with it, so a file of its state outliving a host crash is of no use (`vhpc clean`
removes the rest, like the ledger's, which is not synced either); the ~120 fsyncs of a
16-node boot (~2 ms each here) sat on its path. `durable=True` syncs the file and the
rename, for what outlives a host crash (an image's metadata).

Not for a file bind-mounted into nodes after it was written: a rename gives the path a
new inode, and the bind mount keeps showing the old one.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path


def write_atomic(path: Path, data: str | bytes, mode: int = 0o644,
                 durable: bool = False) -> None:
    """Replace `path` with `data` atomically (same directory temp file, rename); with
    `durable`, the data and the rename are synced to disk too."""
    raw = data.encode() if isinstance(data, str) else data
    directory = path.parent
    tmp = directory / f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    try:
        os.fchmod(fd, mode)  # the umask must not widen or narrow it
        view = memoryview(raw)
        while view:
            view = view[os.write(fd, view):]
        if durable:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        _fsync_dir(directory)


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_in_place(path: Path, data: str) -> None:
    """Rewrite a file bind-mounted into nodes over its own inode (a rename would not reach
    them). The new text is written first, then the file cut to its length: a reader sees
    the old text, the new one, or (only when the new is shorter) the new with old tail."""
    raw = data.encode()
    fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW)
    try:
        view = memoryview(raw)
        offset = 0
        while offset < len(raw):
            offset += os.pwrite(fd, view[offset:], offset)
        os.ftruncate(fd, len(raw))
        os.fsync(fd)
    finally:
        os.close(fd)
