"""A larger CPU share for a process that tears a cluster down while it loads the host.

Right after a step across 1024 nodes the host runs hundreds of runnable tasks, and the
kernel's autogroup scheduler gives every session (each node daemon starts one) the same
share of the 2 cores: the manager's session, which must stop them all, got too little to
do it in seconds. A session leader (the manager) may weight its own session: nice -20
there weighs ~87 default sessions. The processes it starts in its session share that
weight; those started in a session of their own (a background `rm`) do not. The manager
weights its session once its boot or adoption is done (it supervises and serves the API,
`down` included, while jobs may saturate the host); `vhpc down` weights its own from the
script's first lines (cli/entry.py); the daemons
every step's launch asks (munged, dnsmasq, slurmctld) are weighted at each start
(`weight_session`).

Only `os` and `contextlib` are imported here (no pathlib: ~5 ms, and `vhpc down` imports
this module before its session is weighted, when a loaded host gives it the least CPU).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

#: the autogroup file of a process (this one's, or /proc/PID/autogroup)
Autogroup = str | os.PathLike[str]
AUTOGROUP = "/proc/self/autogroup"


def set_nice(autogroup: Autogroup, nice: int) -> bool:
    """Write an autogroup's nice; True if done (False: the process is gone, no autogroups
    in this kernel, or not allowed)."""
    try:
        with open(autogroup, "w", encoding="ascii") as f:
            f.write(f"{nice}\n")
    except OSError:
        return False
    return True


def raise_session_share(nice: int = -20, autogroup: Autogroup = AUTOGROUP) -> bool:
    """Weight this process's session as nice `nice`; True if done. Only a session leader
    does (anyone else would change the session it was started from, e.g. a terminal's)."""
    return os.getsid(0) == os.getpid() and set_nice(autogroup, nice)


def weight_session(pid: int, nice: int) -> bool:
    """Weight the session of process `pid` (a daemon that leads its own) as nice `nice`."""
    return set_nice(f"/proc/{pid}/autogroup", nice)


def session_nice(autogroup: Autogroup = AUTOGROUP) -> int | None:
    """The nice value of this process's session ("/autogroup-N nice V"), None if unknown."""
    try:
        with open(autogroup, encoding="ascii") as f:
            return int(f.read().split()[-1])
    except (OSError, ValueError, IndexError):
        return None


@contextlib.contextmanager
def session_share(nice: int = -20, autogroup: Autogroup = AUTOGROUP) -> Iterator[bool]:
    """Weight the session this command runs in as nice `nice` while the block runs, then
    put its weight back (a terminal's session: the shell waits for the command anyway);
    yields whether it did. For a command that frees the host from a loaded cluster."""
    before = session_nice(autogroup)
    done = before is not None and before > nice and set_nice(autogroup, nice)
    try:
        yield done
    finally:
        if done and before is not None:
            set_nice(autogroup, before)
