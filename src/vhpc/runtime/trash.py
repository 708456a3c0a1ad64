"""Remove a large directory tree without waiting for it.

On a file system mounted with `discard` (this machine's root) every freed block is
discarded synchronously: deleting the state directory of 1024 nodes (their logs, spools
and private directories) took seconds of `vhpc down`. The tree is renamed aside in its
parent (atomic, same file system: its path is free at once) and a detached `rm -rf`
deletes it; what a crash leaves is named `.trash-*` beside the state directories.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from vhpc.runtime.hostops import run_command

TRASH_PREFIX = ".trash-"


def trash_name(path: Path) -> Path:
    """Where `path` goes while it is deleted (a sibling, unique per process and time)."""
    return path.with_name(f"{TRASH_PREFIX}{path.name}-{os.getpid()}-{time.monotonic_ns()}")


def discard_tree(path: Path, first: tuple[str, ...] = ()) -> None:
    """Make `path` disappear now and delete its contents in the background; the files
    named in `first` go at once (a cluster's ledger and spec: the trash is no cluster)."""
    target = trash_name(path)
    try:
        path.rename(target)
    except FileNotFoundError:
        return
    except OSError:  # cannot rename (a mount point, another file system): delete here
        shutil.rmtree(path, ignore_errors=True)
        return
    for name in first:
        (target / name).unlink(missing_ok=True)
    # setsid -f: rm runs in its own session, detached (no zombie for the caller to reap)
    run_command(["setsid", "-f", "rm", "-rf", "--one-file-system", str(target)])
