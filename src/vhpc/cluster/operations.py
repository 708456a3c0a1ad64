"""Operation records: what a multi-step change was doing, so a dead manager's half-done
work can be settled by the next one.

Before `up`, `node add` or `node rm` changes anything, the cluster writes
`<state>/operation.json` (atomically): the kind of change and the nodes it touches. The
record is removed once the change is complete or rolled back, so a record found at
adoption means the previous manager died in the middle. `Cluster.recover` settles it:

    boot    the whole cluster is removed (an `up` that never finished is not a cluster)
    add     the nodes of the record are removed: rolled back, from the ledger
    remove  the removal is finished: the same steps, the nodes leave the spec

Only one operation runs at a time: every mutating path holds `Cluster.lock`.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from vhpc.atomic import write_atomic
from vhpc.runtime.hostops import CommandResult

log = logging.getLogger(__name__)

REMOVE_REASON = "removed by vhpc"


class OpKind(StrEnum):
    """The changes that are made transactional across a manager crash."""

    BOOT = "boot"
    ADD = "add"
    REMOVE = "remove"


@dataclass(frozen=True)
class Operation:
    """One change in progress: its kind and the nodes it makes or removes."""

    kind: OpKind
    nodes: tuple[str, ...] = ()
    started: float = field(default_factory=time.time)

    def to_json(self) -> str:
        """The record as written to operation.json."""
        return json.dumps({"kind": self.kind.value, "nodes": list(self.nodes),
                           "started": self.started})

    @classmethod
    def from_json(cls, text: str) -> Operation:
        """Inverse of :meth:`to_json`."""
        data = json.loads(text)
        return cls(OpKind(data["kind"]), tuple(data.get("nodes", ())),
                   float(data.get("started", 0.0)))


def record_path(state_dir: Path) -> Path:
    """Where the operation in progress is recorded."""
    return state_dir / "operation.json"


def begin(state_dir: Path, operation: Operation) -> None:
    """Record an operation before its first step."""
    write_atomic(record_path(state_dir), operation.to_json() + "\n", 0o600)


def finish(state_dir: Path) -> None:
    """The operation is complete (or rolled back): drop its record."""
    record_path(state_dir).unlink(missing_ok=True)


def pending(state_dir: Path) -> Operation | None:
    """The operation a dead manager left unfinished, if any (an unreadable record is
    treated as none: it was never complete enough to have started)."""
    try:
        return Operation.from_json(record_path(state_dir).read_text())
    except (FileNotFoundError, PermissionError):  # none, or not ours to read (0600)
        return None
    except (OSError, ValueError, KeyError) as err:
        log.warning("ignoring unreadable operation record: %s", err)
        return None


class SlurmControl(Protocol):
    """The Slurm client calls node changes make (SlurmClient implements it)."""

    def run(self, argv: list[str], check: bool = True,
            timeout: float = 30.0) -> CommandResult: ...
    def node_states(self) -> dict[str, str]: ...
    def node_reasons(self) -> dict[str, str]: ...


def scontrol_update(slurm: SlurmControl, names: list[str], state: str, reason: str) -> None:
    """`scontrol update nodename=... state=...` (a warning, not an error, if refused)."""
    argv = ["scontrol", "update", f"nodename={','.join(names)}", f"state={state}"]
    if reason:
        argv.append(f"reason={reason}")
    result = slurm.run(argv, check=False)
    if result.returncode != 0:
        log.warning("%s: %s", " ".join(argv), result.stderr.strip())


def forget_nodes(slurm: SlurmControl, names: list[str], timeout: float = 15.0) -> None:
    """Delete dynamic nodes from slurmctld (their slurmd has exited)."""
    known = set(slurm.node_states())
    present = [n for n in names if n in known]
    if not present:
        return
    scontrol_update(slurm, present, "down", REMOVE_REASON)
    deadline = time.monotonic() + timeout
    while True:
        result = slurm.run(["scontrol", "delete", f"nodename={','.join(present)}"],
                           check=False)
        if result.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.2)  # jobs being killed on it still count as running
    if result.returncode != 0:
        log.warning("scontrol delete %s: %s", ",".join(present), result.stderr.strip())
