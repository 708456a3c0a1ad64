"""Remove a large directory tree without waiting for it.

On a file system mounted with `discard` (this machine's root) every freed block is
discarded synchronously: deleting the state directory of 1024 nodes (their logs, spools
and private directories) took seconds of `vhpc down`. The tree is renamed aside in its
parent (atomic, same file system: its path is free at once) and a detached `rm -rf`
deletes it; what a crash leaves is named `.trash-*` beside the state directories.

Nothing here waits for another process: right after a step across 1024 nodes the host
runs hundreds of runnable tasks, and a helper process (`setsid -f rm`, waited for) took
seconds to be scheduled; unlinking the multi-megabyte ledger (a synchronous discard) too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

TRASH_PREFIX = ".trash-"
#: suffix of the files `discard_tree` renames at once in the trash (`first`)
GONE_SUFFIX = ".gone"


def trash_name(path: Path) -> Path:
    """Where `path` goes while it is deleted (a sibling, unique per process and time)."""
    return path.with_name(f"{TRASH_PREFIX}{path.name}-{os.getpid()}-{time.monotonic_ns()}")


def discard_tree(path: Path, first: tuple[str, ...] = ()) -> None:
    """Make `path` disappear now and delete its contents in the background; the files
    named in `first` lose their names at once (a cluster's ledger and spec: the trash is
    no cluster), renamed with GONE_SUFFIX."""
    target = trash_name(path)
    try:
        path.rename(target)
    except FileNotFoundError:
        return
    except OSError:  # cannot rename (a mount point, another file system): delete here
        shutil.rmtree(path, ignore_errors=True)
        return
    for name in first:
        try:
            (target / name).rename(target / (name + GONE_SUFFIX))
        except FileNotFoundError:
            pass
    # its own session, not waited for: a caller that lives on reaps it in Python's next
    # subprocess call, a manager about to exit leaves it to init
    subprocess.Popen(["rm", "-rf", "--one-file-system", str(target)],
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL, start_new_session=True)
