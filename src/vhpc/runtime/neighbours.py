"""The kernel's neighbour (ARP) table limits, raised for large clusters and restored after.

The IPv4 neighbour table is one table for every network namespace of the host, and its
hard limit `gc_thresh3` (1024 by default) counts entries of all of them; the limits exist
only in the host's own namespace (a node's namespace has no such sysctl). A cluster of N
nodes holds ~5N entries (each node: its gateway, the controller and the DNS node; the
controller and the host: every node), so past ~200 nodes the table overflows ("neighbour
table overflow" in the kernel log) and connections fail at random.

So each cluster *claims* the entries it needs, in a host-wide claims file under a lock.
The first claim records the host's own values; the limits are set to the host's values
or the sum of the claims, whichever is larger; when the last claim is released the
host's values are written back and the file is removed. A cluster's claim is recorded in
its ledger (cluster/teardown.py releases it), so `down` and `vhpc clean` undo it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path

from vhpc.atomic import write_atomic
from vhpc.spec.paths import state_root

NEIGH_DIR = Path("/proc/sys/net/ipv4/neigh/default")
#: The soft limit (gc_thresh2) and hard limit (gc_thresh3) vhpc raises; gc_thresh1 stays.
SOFT, HARD = "gc_thresh2", "gc_thresh3"


def claims_file() -> Path:
    """The host-wide record of the clusters' claims and the host's own limits."""
    return state_root() / ".neighbour-claims.json"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def wanted_limits(original: dict[str, int], claims: dict[str, int]) -> dict[str, int]:
    """The limits to set: the host's own, or what the claims add up to, if more."""
    total = sum(claims.values())
    return {SOFT: max(original[SOFT], total), HARD: max(original[HARD], 2 * total)}


def _read(table: Path, name: str) -> int:
    return int((table / name).read_text().split()[0])


def _write(table: Path, limits: dict[str, int]) -> None:
    # the hard limit first when raising, last when lowering: soft <= hard throughout
    current = _read(table, HARD)
    order = [HARD, SOFT] if limits[HARD] >= current else [SOFT, HARD]
    for name in order:
        if _read(table, name) != limits[name]:
            (table / name).write_text(f"{limits[name]}\n")


def claim(holder: str, entries: int, table: Path = NEIGH_DIR,
          record: Path | None = None) -> None:
    """Claim `entries` neighbour entries for `holder` (replacing its earlier claim)."""
    record = record or claims_file()
    with _locked(record):
        state = _load(record)
        if not state["claims"]:
            state["original"] = {SOFT: _read(table, SOFT), HARD: _read(table, HARD)}
        state["claims"][holder] = entries
        write_atomic(record, json.dumps(state), 0o600)
        _write(table, wanted_limits(state["original"], state["claims"]))


def release(holder: str, table: Path = NEIGH_DIR, record: Path | None = None) -> None:
    """Drop `holder`'s claim; the last one out restores the host's own limits."""
    record = record or claims_file()
    with _locked(record):
        state = _load(record)
        if holder not in state["claims"]:
            return
        del state["claims"][holder]
        _write(table, wanted_limits(state["original"], state["claims"]))
        if state["claims"]:
            write_atomic(record, json.dumps(state), 0o600)
        else:
            os.unlink(record)


def _load(record: Path) -> dict[str, dict[str, int]]:
    try:
        data = json.loads(record.read_text())
    except (OSError, ValueError):
        return {"original": {}, "claims": {}}
    return {"original": {k: int(v) for k, v in data.get("original", {}).items()},
            "claims": {k: int(v) for k, v in data.get("claims", {}).items()}}
