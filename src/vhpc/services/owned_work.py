"""Work directories of a manager's background jobs (registered accounting templates,
spare datadirs: services/registered_template.py, services/spare_datadir.py). Each holds
the pid of the manager that made it, so that a later manager removes those whose owner
died (a killed manager's job dies with it, by parent-death signal, and leaves its work
directory behind)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from vhpc.atomic import write_atomic

OWNER = "owner.pid"
#: a work directory younger than this may not have its owner file yet
GRACE = 10.0


def make(parent: Path, prefix: str) -> Path:
    """A new work directory under `parent`, owned by this process."""
    work = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    write_atomic(work / OWNER, f"{os.getpid()}\n")
    return work


def is_stale(work: Path, max_age: float, now: float) -> bool:
    """True if `work` is older than `max_age` seconds, or its owner is gone (past GRACE);
    False if it vanished meanwhile."""
    try:
        age = now - work.stat().st_mtime
    except OSError:
        return False
    return age > max_age or (age > GRACE and not owner_alive(work))


def owner_alive(work: Path) -> bool:
    """True if the process named in the work directory's owner file runs."""
    try:
        os.kill(int((work / OWNER).read_text()), 0)
    except (OSError, ValueError):  # no such process; no owner file
        return False
    return True
