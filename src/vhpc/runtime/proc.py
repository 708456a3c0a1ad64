"""Process identity and signals: a pid is ours only if its start time matches the ledger."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class ProcessRecord:
    """A pid plus its kernel start time (clock ticks since boot): survives pid reuse."""

    pid: int
    starttime: int

    def to_dict(self) -> dict[str, int]:
        """JSON-ready form."""
        return {"pid": self.pid, "starttime": self.starttime}


def starttime_of(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat, or None if the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # comm may contain spaces and parentheses: split after the last ')'.
    fields = data[data.rindex(b")") + 2 :].split()
    if fields[0] == b"Z":
        return None
    return int(fields[19])


def record_of(pid: int) -> ProcessRecord | None:
    """The identity record of a live pid."""
    start = starttime_of(pid)
    return None if start is None else ProcessRecord(pid, start)


def is_alive(record: ProcessRecord) -> bool:
    """True if the very process of this record still runs (not a reused pid)."""
    return starttime_of(record.pid) == record.starttime


def signal_record(record: ProcessRecord, sig: int = signal.SIGTERM) -> bool:
    """Signal the process only if it is still the one recorded; True if signalled."""
    if not is_alive(record):
        return False
    try:
        os.kill(record.pid, sig)
    except ProcessLookupError:
        return False
    return True


def reap_if_child(pid: int) -> None:
    """Collect the exit status of a child so it does not stay a zombie."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def reap_ended(records: list[ProcessRecord]) -> list[ProcessRecord]:
    """Reap those of the records that have ended (and are children); those still alive.

    Liveness is read first and the ended are reaped after: a process that dies between a
    reap and the read would otherwise be reported gone while it stays a zombie."""
    alive = [r for r in records if is_alive(r)]
    for record in records:
        if record not in alive:
            reap_if_child(record.pid)
    return alive


def terminate(records: list[ProcessRecord], grace: float = 5.0) -> None:
    """SIGTERM the recorded processes, wait up to `grace` seconds, SIGKILL the rest."""
    live = [r for r in records if signal_record(r, signal.SIGTERM)]
    deadline = time.monotonic() + grace
    while live and time.monotonic() < deadline:
        live = reap_ended(live)
        if live:
            time.sleep(0.05)
    for r in live:
        signal_record(r, signal.SIGKILL)
        reap_if_child(r.pid)
