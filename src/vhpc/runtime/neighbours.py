"""Host-wide network limits that a large cluster outgrows, raised and restored after.

Two limits exist only in the host's own namespace (a node's namespace has no such sysctl)
and count what every namespace does:
- the IPv4 neighbour table is one table for all namespaces, and its hard limit
  `gc_thresh3` (1024 by default) counts entries of all of them. A cluster of N nodes holds
  ~5N entries (each node: the controller and the DNS node; the controller and the host:
  every node), so past ~200 nodes it overflows ("neighbour table overflow" in the kernel
  log) and a node that cannot add an entry answers no ARP request: connections fail.
- `netdev_max_backlog` (1000) bounds each CPU's queue of received frames. One broadcast
  (an ARP request) on a bridge of N ports is N frames queued at once, through veths: at
  1024 nodes the last ones were dropped (millions of drops in /proc/net/softnet_stat),
  the controller could not resolve the DNS node and 17 nodes stayed "not responding".

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

NET_SYSCTL = Path("/proc/sys/net")
#: The neighbour table's soft and hard limits vhpc raises (gc_thresh1 stays), and the
#: per-CPU receive queue.
SOFT, HARD, BACKLOG = "gc_thresh2", "gc_thresh3", "netdev_max_backlog"
FILES = {SOFT: "ipv4/neigh/default/gc_thresh2", HARD: "ipv4/neigh/default/gc_thresh3",
         BACKLOG: "core/netdev_max_backlog"}


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
    """The limits to set: the host's own, or what the claims add up to, if more (a claim
    is ~6 entries a node: also room for a broadcast to every node of the clusters)."""
    total = sum(claims.values())
    return {SOFT: max(original[SOFT], total), HARD: max(original[HARD], 2 * total),
            BACKLOG: max(original[BACKLOG], total)}


def _read(proc: Path, name: str) -> int:
    return int((proc / FILES[name]).read_text().split()[0])


def _write(proc: Path, limits: dict[str, int]) -> None:
    # the hard limit first when raising, last when lowering: soft <= hard throughout
    current = _read(proc, HARD)
    order = [HARD, SOFT, BACKLOG] if limits[HARD] >= current else [SOFT, HARD, BACKLOG]
    for name in order:
        if _read(proc, name) != limits[name]:
            (proc / FILES[name]).write_text(f"{limits[name]}\n")


def claim(holder: str, entries: int, proc: Path = NET_SYSCTL,
          record: Path | None = None) -> None:
    """Claim `entries` neighbour entries for `holder` (replacing its earlier claim)."""
    record = record or claims_file()
    with _locked(record):
        state = _load(record)
        if not state["claims"]:
            state["original"] = {name: _read(proc, name) for name in FILES}
        state["original"].setdefault(BACKLOG, _read(proc, BACKLOG))  # a record of before
        state["claims"][holder] = entries
        write_atomic(record, json.dumps(state), 0o600)
        _write(proc, wanted_limits(state["original"], state["claims"]))


def release(holder: str, proc: Path = NET_SYSCTL, record: Path | None = None) -> None:
    """Drop `holder`'s claim; the last one out restores the host's own limits."""
    record = record or claims_file()
    with _locked(record):
        state = _load(record)
        if holder not in state["claims"]:
            return
        del state["claims"][holder]
        state["original"].setdefault(BACKLOG, _read(proc, BACKLOG))  # a record of before
        _write(proc, wanted_limits(state["original"], state["claims"]))
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
