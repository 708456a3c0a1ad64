"""Starting a cluster's manager process (``python -m vhpc.server.manager MODE NAME``).

`vhpc up` starts the manager before anything else, so that its imports (~0.1 s) run
beside the CLI's own: the `vhpc` script's entry point (cli/entry.py) calls `start_early`
for an `up` before it loads the CLI, and `control.up` takes that process (`take_early`).
A manager in boot mode waits for its spec on stdin; at the end of its input it exits
having made nothing. Only the standard library is imported here.
"""

from __future__ import annotations

import os
import subprocess
import sys

_early: tuple[str, subprocess.Popen[str]] | None = None


def start(mode: str, name: str) -> subprocess.Popen[str]:
    """Start a detached manager of cluster `name`; its input is written by the caller."""
    return subprocess.Popen(
        [sys.executable, "-m", "vhpc.server.manager", mode, name],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True, env=dict(os.environ), cwd="/",
    )


def start_early(name: str) -> None:
    """Start the boot manager of `name` now; `take_early` hands it to `up`."""
    global _early
    _early = (name, start("boot", name))


def take_early(name: str) -> subprocess.Popen[str] | None:
    """The manager started early for cluster `name`, once. One started for another name
    (the CLI parsed its options differently) is told to exit: its input ends."""
    global _early
    early, _early = _early, None
    if early is None:
        return None
    started_for, proc = early
    if started_for == name:
        return proc
    if proc.stdin is not None:
        proc.stdin.close()
        proc.stdin = None
    return None
