"""Remove exactly what a ledger holds: processes, cgroups (and all their processes),
namespaces, links, mounts and the state directory, in dependency order.

A link is written to the ledger before it is made, so a failed `ip link add` (the name
was taken) leaves a record of a link that is not ours. A veth is therefore removed only
if it hangs on no bridge or on one of this ledger's bridges; a veth on another cluster's
bridge is never touched, only its stale record dropped.

When the whole cluster goes (`vhpc down`, `vhpc clean`) nothing of it needs a clean
exit, and 1024 nodes must go in seconds on 2 cores: the node inits get SIGKILL first
(their daemons end with them), then the node cgroups are emptied and removed, the links
deleted (one kernel batch) and the namespace pins released (one lazy umount of their
directory) side by side while the processes die; the state directory goes last, renamed
aside and deleted in the background. One node (`node rm`) goes step by step, its daemons
stopped before its init.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from vhpc.cluster.ledger import TEARDOWN_ORDER, Entry, Kind, Ledger
from vhpc.cluster.node import is_init_key
from vhpc.errors import VhpcError
from vhpc.runtime import Runtime, cgroups
from vhpc.runtime.netfault import delete_table
from vhpc.runtime.network import link_master
from vhpc.runtime.proc import ProcessRecord
from vhpc.runtime.trash import discard_tree

log = logging.getLogger(__name__)
MANAGER_KEY = "manager"
#: Ledger data of a DIRECTORY that is an (empty) mount point made for a share: rmdir only.
MOUNTPOINT = "mountpoint"
#: seconds a whole-cluster teardown waits for its killed node inits to end
GONE_TIMEOUT = 30.0


def process_record(entry: Entry) -> ProcessRecord:
    """The process identity stored in a PROCESS entry."""
    return ProcessRecord(int(entry.data.get("pid", 0)), int(entry.data.get("starttime", -1)))


MasterFn = Callable[[str], str | None]


def foreign_veths(ledger: Ledger, veths: list[Entry], master_of: MasterFn) -> list[Entry]:
    """Veth records whose link hangs on a bridge this ledger does not own (not ours)."""
    ours = {e.ident for e in ledger.entries(Kind.BRIDGE)}
    return [e for e in veths if (m := master_of(e.ident)) is not None and m not in ours]


def remove_owned(ledger: Ledger, runtime: Runtime,
                 nodes: str | Collection[str] | None = None,
                 master_of: MasterFn = link_master,
                 drop_table: Callable[[str], None] = delete_table,
                 thaw: Callable[[str], None] = cgroups.thaw,
                 before_directories: Callable[[], None] | None = None) -> list[str]:
    """Tear down the ledger's entries (of some nodes, or all); return what could not go.

    `drop_table` deletes the cluster's nftables table of network faults and `thaw` thaws
    a frozen cgroup before its processes are signalled (fakes in tests).
    `before_directories` runs once every process is gone and before any directory is
    removed (cluster/kept_logs.py moves the logs aside there)."""
    plan = list(ledger.teardown_plan(nodes))
    log.info("teardown: %d entries of %s", len(plan), "all nodes" if nodes is None else nodes)
    foreign = foreign_veths(ledger, [e for e in plan if e.kind is Kind.VETH], master_of)
    for entry in foreign:
        log.warning("veth %s is on bridge %s of another cluster: not ours, left alone",
                    entry.ident, master_of(entry.ident))
    ledger.remove_all(foreign)
    skip = {e.key for e in foreign}
    plan = [e for e in plan if e.key not in skip]
    for entry in plan:  # a frozen node (vhpc fault freeze) takes no signal until thawed
        if entry.kind is Kind.CGROUP:
            thaw(entry.ident)
    managers, others, inits, with_init = _process_groups(plan, nodes is None)
    removal = _Removal(ledger, runtime, plan, drop_table, before_directories)
    # The manager first, so it cannot restart what is being stopped.
    _terminate(ledger, runtime, managers, 5.0)
    _terminate(ledger, runtime, others, 5.0)
    # Node inits last and at once: pid 1 of a PID namespace ignores SIGTERM, and its
    # SIGKILL ends every process still in the node.
    killed = _terminate(ledger, runtime, inits, 0.0) + [process_record(e) for e in with_init]
    ledger.remove_all(with_init)
    # The whole cluster goes: its cgroups empty while the killed nodes' processes die
    # (seconds at 1024 nodes); the links and pins need no process gone and go meanwhile,
    # side by side too (a link deletion waits for the devices' last users to let go:
    # 1029 veths took 2-5 s in a row with the rest).
    beside = [[Kind.CGROUP], [Kind.NFT_TABLE, Kind.VETH, Kind.BRIDGE]] if nodes is None else []
    failed: list[str] = []
    with ThreadPoolExecutor(max_workers=max(1, len(beside))) as side:
        pending = [side.submit(removal.remove_all, kinds) for kinds in beside]
        for kind in removal.groups:
            if kind in (Kind.MOUNT, Kind.DIRECTORY):  # last, once every process is gone
                for future in pending:
                    failed += future.result()
                pending = []
                failed += _wait_gone(runtime, killed)
                killed = []
            if not any(kind in kinds for kinds in beside):
                failed += removal.remove(kind)
        for future in pending:  # a plan without mounts or directories
            failed += future.result()
    return failed + _wait_gone(runtime, killed)


def _process_groups(plan: list[Entry], whole: bool
                    ) -> tuple[list[Entry], list[Entry], list[Entry], list[Entry]]:
    """The plan's processes: managers, other daemons, node inits, and (`whole` cluster)
    the daemons that end with their node's init without a signal of their own.

    When the whole cluster goes its daemons need no clean exit (their state goes too):
    the SIGKILL of their node's init ends them (1024 slurmds took seconds to stop,
    slurmctld and the rest 2-4 s); the node's cgroup, emptied after, holds any that
    would not be in its PID namespace."""
    procs = [e for e in plan if e.kind is Kind.PROCESS]
    managers = [e for e in procs if e.ident == MANAGER_KEY]
    inits = [e for e in procs if is_init_key(e.ident)]
    others = [e for e in procs if e.ident != MANAGER_KEY and not is_init_key(e.ident)]
    nodes_with_init = {e.node for e in inits} if whole else set()
    with_init = [e for e in others if e.node in nodes_with_init]
    others = [e for e in others if e.node not in nodes_with_init]
    return managers, others, inits, with_init


def _terminate(ledger: Ledger, runtime: Runtime, group: list[Entry],
               grace: float) -> list[ProcessRecord]:
    """Stop a group of recorded processes (never this one) and drop their records; the
    processes signalled."""
    started = time.monotonic()
    records = [r for r in map(process_record, group) if r.pid != os.getpid()]
    runtime.terminate(records, grace)
    ledger.remove_all(group)
    log.info("teardown: %d processes (grace %.0fs) in %.2fs", len(group), grace,
             time.monotonic() - started)
    return records


def _wait_gone(runtime: Runtime, records: list[ProcessRecord],
               timeout: float = GONE_TIMEOUT) -> list[str]:
    """Wait for the killed node inits and the daemons that die with them to end (reaped
    where they are the manager's children); what still runs after `timeout`.

    An init that got SIGKILL leaves its cgroup at once but ends only after every process
    of its PID namespace was reaped, and its slurmd is the manager's child: the emptied
    cgroups do not say the inits are gone, and `down` must not return before."""
    if not records:
        return []
    started = time.monotonic()
    alive = runtime.wait_gone(records, timeout)
    log.info("teardown: %d killed processes gone in %.2fs", len(records),
             time.monotonic() - started)
    return [f"process {r.pid} (still running after its node's init was killed)"
            for r in alive]


class _Removal:
    """The non-process entries of a plan by kind, each kind removed once, in one call."""

    def __init__(self, ledger: Ledger, runtime: Runtime, plan: list[Entry],
                 drop_table: Callable[[str], None],
                 before_directories: Callable[[], None] | None) -> None:
        self.ledger, self.runtime, self.drop_table = ledger, runtime, drop_table
        self.before_directories = before_directories
        pin_dirs = _pin_dirs(plan)
        self.groups: dict[Kind, list[Entry]] = {
            kind: [e for e in plan if e.kind is kind and e not in pin_dirs]
            for kind in TEARDOWN_ORDER if kind is not Kind.PROCESS}
        self.groups[Kind.NAMESPACE] = pin_dirs + self.groups[Kind.NAMESPACE]  # dir first

    def remove_all(self, kinds: list[Kind]) -> list[str]:
        """Remove the entries of these kinds, in this order; what could not go."""
        return [failure for kind in kinds for failure in self.remove(kind)]

    def remove(self, kind: Kind) -> list[str]:
        """Remove the entries of one kind (once: a kind done early is empty after);
        what could not go."""
        group, self.groups[kind] = self.groups[kind], []
        if kind is Kind.DIRECTORY and self.before_directories is not None:
            self.before_directories()
        if not group:
            return []
        started = time.monotonic()
        removed, failed = [], []
        for done, entry in _remove_group(self.runtime, kind, group, self.drop_table):
            if not done:
                failed.append(f"{entry.kind.value} {entry.ident}")
            elif kind is not Kind.DIRECTORY:  # the ledger file lived in that directory
                removed.append(entry)
        self.ledger.remove_all(removed)
        log.info("teardown: %d %s in %.2fs", len(group), kind.value, time.monotonic() - started)
        return failed


def _pin_dirs(plan: list[Entry]) -> list[Entry]:
    """The MOUNT entries of the plan that hold namespace pins of the plan below them (a
    cluster's private `ns` directory, when the whole cluster goes)."""
    parents = {Path(e.ident).parent for e in plan if e.kind is Kind.NAMESPACE}
    return [e for e in plan if e.kind is Kind.MOUNT and Path(e.ident) in parents]


def _remove_group(runtime: Runtime, kind: Kind, group: list[Entry],
                  drop_table: Callable[[str], None]) -> list[tuple[bool, Entry]]:
    """Remove entries of one kind, batched where the tools allow (one umount, one ip)."""
    try:
        if kind in (Kind.NAMESPACE, Kind.MOUNT):
            runtime.release_mounts([Path(e.ident) for e in group])
        elif kind in (Kind.VETH, Kind.BRIDGE):
            runtime.delete_links([e.ident for e in group])
        elif kind is Kind.NEIGH_CLAIM:  # the host's ARP limits (runtime/neighbours.py)
            for entry in group:
                runtime.release_neighbours(entry.ident)
        elif kind is Kind.NFT_TABLE:  # network faults (cluster/fault_control.py)
            for entry in group:
                drop_table(entry.ident)
        elif kind is Kind.DIRECTORY:
            for entry in group:
                if entry.data.get(MOUNTPOINT):  # a share's mount point: never its contents
                    _remove_empty_dir(entry.ident)
                else:  # renamed aside at once, deleted in the background
                    discard_tree(Path(entry.ident), first=("ledger.jsonl", "spec.json"))
        else:  # a node's cgroups are independent: emptied, then removed, side by side
            return _remove_cgroups(runtime, group)
    except (OSError, VhpcError) as err:
        log.warning("could not remove %d %s: %s", len(group), kind.value, err)
        return [(False, e) for e in group]
    return [(True, e) for e in group]


def _remove_empty_dir(path: str) -> None:
    """rmdir a directory vhpc made as a mount point; one that holds files is left alone."""
    try:
        os.rmdir(path)
    except FileNotFoundError:
        pass
    except OSError as err:
        log.warning("left mount point %s in place: %s", path, err)


def _remove_cgroups(runtime: Runtime, group: list[Entry]) -> list[tuple[bool, Entry]]:
    """Kill every process of each cgroup (jobs included), wait until it is empty and
    remove its directories, 8 cgroups at a time (one with a process left stays)."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        done = list(pool.map(lambda e: _empty_cgroup(runtime, e)
                             and _remove_cgroup_dirs(runtime, e), group))
    return list(zip(done, group, strict=True))


def _empty_cgroup(runtime: Runtime, entry: Entry) -> bool:
    """Kill every process of a cgroup and wait for it to be empty."""
    try:
        runtime.kill_cgroup(entry.ident)
    except (OSError, VhpcError) as err:
        log.warning("could not empty cgroup %s: %s", entry.ident, err)
        return False
    return True


def _remove_cgroup_dirs(runtime: Runtime, entry: Entry) -> bool:
    """Remove an empty cgroup's directories (those below it first)."""
    try:
        for d in runtime.cgroup_dirs(entry.ident):
            runtime.remove_cgroup_dir(d)
    except (OSError, VhpcError) as err:
        log.warning("could not remove cgroup %s: %s", entry.ident, err)
        return False
    return True
