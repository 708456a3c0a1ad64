"""A gate that holds processes between their start and their exec until it is released.

A boot's slurmds cannot start before slurmctld listens (a refused registration is tried
again only a second later), but everything before their exec can: joining the node's
cgroup and namespaces, the fork of the manager (~0.1 s for 16 nodes, 4 at a time). With
accounting, slurmctld waits ~0.3 s for MariaDB and slurmdbd; the slurmds are spawned in
that time, each held by the gate, and the release lets them all exec at once.

The gate is a FIFO that this process holds open for reading and writing: a held process
opens it for reading (at once: there is a writer) and reads, which blocks until every
writer is gone. `release` removes the FIFO, then closes it: a process that had opened it
reads end-of-file and goes on; one that comes later finds no FIFO and goes on too. So
no process waits on a gate that is released, whatever the order.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

#: the sh that waits at the gate ($0), then execs the command ("$@")
_WAIT = '{ read _ < "$0"; } 2>/dev/null; exec "$@"'


class Gate:
    """A FIFO at `path`, closed until `release`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.unlink(missing_ok=True)  # a dead boot's
        os.mkfifo(path, 0o600)
        self._fd: int | None = os.open(path, os.O_RDWR)  # not inherited (PEP 446)

    def wrap(self, argv: tuple[str, ...]) -> tuple[str, ...]:
        """`argv`, held at the gate until it is released (at once if it is)."""
        return ("sh", "-c", _WAIT, str(self.path), *argv)

    @property
    def released(self) -> bool:
        """True once `release` ran."""
        return self._fd is None

    def release(self) -> None:
        """Let every held process go on (idempotent)."""
        self.path.unlink(missing_ok=True)
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
