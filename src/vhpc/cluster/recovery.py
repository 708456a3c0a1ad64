"""What an adopting manager settles before it supervises: the previous manager's
half-done operation, resources no node of the spec owns, and Slurm's view of both.

Called by `Cluster.adopt` (under `Cluster.lock`); see cluster/operations.py for the
operation records and what each kind means when found unfinished.
"""

from __future__ import annotations

import logging
import shutil
import time
from typing import TYPE_CHECKING

from vhpc.cluster import operations as ops
from vhpc.cluster.ledger import Kind, Ledger
from vhpc.cluster.node import cgroup_group, is_init_key
from vhpc.cluster.operations import OpKind
from vhpc.cluster.supervisor import heartbeat_age
from vhpc.cluster.teardown import MANAGER_KEY, process_record, remove_owned
from vhpc.errors import BootError, VhpcError
from vhpc.runtime.proc import is_alive
from vhpc.services.slurm import MANAGER_DOWN_REASON, heartbeat_file
from vhpc.spec.model import NodeRole
from vhpc.spec.paths import ClusterPaths

if TYPE_CHECKING:
    from vhpc.cluster.cluster import Cluster

log = logging.getLogger(__name__)


def booting_manager(paths: ClusterPaths) -> int | None:
    """The pid of the manager still running this cluster's `up`, or None.

    A cluster that is booting has no API yet: a command that finds no manager must not
    stop this one and adopt (that would cut the boot short); it waits or says so.
    """
    op = ops.pending(paths.root)
    if op is None or op.kind is not OpKind.BOOT:
        return None
    try:
        entries = Ledger(paths.ledger).entries(Kind.PROCESS)
    except OSError:  # not there yet, or not readable by this user (0600)
        return None
    for entry in entries:
        if entry.ident == MANAGER_KEY and is_alive(process_record(entry)):
            return process_record(entry).pid
    return None


def dead_manager_note(paths: ClusterPaths, now: float | None = None) -> str | None:
    """One line for a user whose command finds the manager dead (before a new one adopts
    the cluster): its pid and how long nothing supervised the cluster; None if alive."""
    try:
        entries = Ledger(paths.ledger).entries(Kind.PROCESS)
    except OSError:
        return None
    managers = [process_record(e) for e in entries if e.ident == MANAGER_KEY]
    if any(is_alive(r) for r in managers):
        return None
    pid = f"pid {managers[-1].pid}" if managers else "no pid recorded"
    silent = heartbeat_age(heartbeat_file(paths), now)
    since = f", nothing supervised the cluster for {silent:.0f}s" if silent is not None else ""
    return f"manager: dead ({pid}{since}); starting one that adopts the cluster"


def settle(cluster: Cluster) -> list[str]:
    """Finish or roll back what a dead manager left half-done; return the node names
    Slurm must forget (once slurmctld answers).

    An unfinished boot removes the whole cluster and raises BootError: an `up` that
    never finished must not be adopted as a cluster that is ready.
    """
    c = cluster
    op = ops.pending(c.paths.root)
    if op is not None and op.kind is OpKind.BOOT:
        leftovers = c.teardown()
        raise BootError(
            f"cluster {c.spec.name!r} never finished booting (its manager died during "
            "'vhpc up'); everything it had made is removed"
            + (f" except {', '.join(leftovers)} ('vhpc clean' retries)" if leftovers else "")
            + f": run 'vhpc -c {c.spec.name} up' again")
    in_spec = {n.name for n in c.spec.nodes}
    drop = set(op.nodes) - _service_nodes(cluster) if op is not None else set()
    orphans = {e.node for e in c.ledger.entries() if e.node and e.node not in in_spec}
    drop |= orphans
    if drop:
        names = sorted(drop)
        leftovers = remove_owned(c.ledger, c.runtime, names)
        for name in names:
            shutil.rmtree(c.paths.node_dir(name), ignore_errors=True)
            shutil.rmtree(c.paths.slurm_spool / name, ignore_errors=True)
        if drop & in_spec:
            c.set_spec(c.spec.with_nodes(tuple(n for n in c.spec.nodes if n.name not in drop)))
        c.events.emit("operation_recovered", _message(op, names, leftovers), "", "warning")
    ops.finish(c.paths.root)
    _finish_stops(cluster)
    return sorted(drop)


def _finish_stops(cluster: Cluster) -> None:
    """Stop what still runs on nodes the spec says are stopped (a manager killed during
    `node stop`, or while a lost node was being stopped): adoption would not watch it."""
    c = cluster
    stopped = {n.name for n in c.spec.computes if n.stopped}
    daemons = [e for e in c.ledger.entries(Kind.PROCESS)
               if e.node in stopped and not is_init_key(e.ident)]
    if not daemons:
        return
    c.runtime.terminate([process_record(e) for e in daemons], 2.0)
    for entry in daemons:
        c.ledger.remove(entry)
    nodes = sorted({e.node for e in daemons})
    for name in nodes:
        c.runtime.kill_cgroup(cgroup_group(c.spec.name, name))
    c.events.emit("operation_recovered", f"stopped what still ran on {', '.join(nodes)} "
                  "(stopped in the spec)", "", "warning")


def _service_nodes(cluster: Cluster) -> set[str]:
    return {n.name for n in cluster.spec.nodes if n.role is not NodeRole.COMPUTE}


def _message(op: ops.Operation | None, names: list[str], leftovers: list[str]) -> str:
    shown = ", ".join(names) if len(names) <= 4 else f"{names[0]}..{names[-1]} ({len(names)})"
    if op is None:
        what = f"removed resources of {shown}, which no node of the spec owned"
    elif op.kind is OpKind.ADD:
        what = f"the manager died while adding {shown}: rolled back (nodes removed)"
    else:
        what = f"the manager died while removing {shown}: removal finished"
    return what + (f"; could not remove {', '.join(leftovers)}" if leftovers else "")


def reconcile_slurm(cluster: Cluster, forget: list[str], wait: float = 30.0) -> list[str]:
    """Delete `forget` from slurmctld and resume the nodes the health check drained while
    no manager ran; return the resumed names. Waits for slurmctld only if needed."""
    c = cluster
    deadline = time.monotonic() + (wait if forget else 2.0)
    while not c.slurm.ping():
        if time.monotonic() > deadline:
            log.warning("slurmctld does not answer: Slurm not reconciled after adoption")
            return []
        time.sleep(0.1)
    try:
        if forget:
            ops.forget_nodes(c.slurm, forget)
        drained = sorted(name for name, reason in c.slurm.node_reasons().items()
                         if reason == MANAGER_DOWN_REASON)
        if drained:
            ops.scontrol_update(c.slurm, drained, "resume", "")
    except (VhpcError, OSError) as err:
        log.warning("reconciling Slurm after adoption: %s", err)
        return []
    return drained
