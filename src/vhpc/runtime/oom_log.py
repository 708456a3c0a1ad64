"""OOM kills of processes in Slurm's job cgroups, counted from the kernel log (cgroup v1).

cgroup v1 counts an OOM kill only in the victim's own memory cgroup (`oom_kill` in
memory.oom_control), and Slurm removes a job's cgroups when its step ends: a job process
killed at its job's or its node's limit would never show in the node's counter. The
kernel logs every kill with the victim's cgroup path (`oom-kill:...,oom_memcg=/vhpc-c/n,
task_memcg=/vhpc-c/n/slurm_n/uid_U/job_J/step_S/task_T,...`); `KernelOomLog` follows
/dev/kmsg from the moment it is opened and counts the kills by that path. One reader a
process (the manager's samples and status both read it); without /dev/kmsg it counts none.
"""

from __future__ import annotations

import os
import re
import threading
from collections import Counter
from pathlib import Path

KMSG = Path("/dev/kmsg")
_VICTIM = re.compile(r"oom-kill:.*[,:]task_memcg=([^,\s]+)")


def oom_victim_cgroup(record: str) -> str | None:
    """The victim's memory cgroup path in one kernel log record, if it is an OOM kill."""
    match = _VICTIM.search(record)
    return match.group(1) if match else None


class KernelOomLog:
    """Counts OOM kills by the victim's cgroup, from when it was first asked."""

    def __init__(self, path: Path = KMSG) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._opened = False
        self._counts: Counter[str] = Counter()
        self._partial = ""

    def start(self) -> None:
        """Start counting now (else at the first `below`)."""
        with self._lock:
            if not self._opened:
                self._open()

    def below(self, group: str) -> int:
        """Kills of processes in cgroups strictly below `group` ('vhpc-c/node')."""
        prefix = f"/{group.strip('/')}/"
        with self._lock:
            self._poll()
            return sum(n for path, n in self._counts.items() if path.startswith(prefix))

    def _open(self) -> None:
        self._opened = True
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            return
        try:
            os.lseek(fd, 0, os.SEEK_END)  # kills from now on (the ring holds old clusters')
        except OSError:
            os.close(fd)
            return
        self._fd = fd

    def _poll(self) -> None:
        if not self._opened:
            self._open()
        if self._fd is None:
            return
        while True:
            try:
                chunk = os.read(self._fd, 8192)
            except BlockingIOError:
                return
            except BrokenPipeError:  # records overwritten before we read them: go on
                continue
            except OSError:
                return
            if not chunk:
                return
            text = self._partial + chunk.decode(errors="replace")
            lines = text.split("\n")
            self._partial = lines.pop()
            for line in lines:
                victim = oom_victim_cgroup(line)
                if victim is not None:
                    self._counts[victim] += 1


#: the process's reader, opened by the first cgroup v1 driver (runtime/cgroups.py)
KERNEL_OOMS = KernelOomLog()
