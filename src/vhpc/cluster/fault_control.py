"""The fault controller of a live cluster: inject, list and clear faults (cluster/faults.py)
through the kernel adapter (runtime/netfault.py), with an event for each.

The active faults are kept in `<state>/faults.json` (so a restarted manager knows them);
the cluster's nftables table is in the ledger (Kind.NFT_TABLE) while it exists, so
`down` and `clean` delete it even without a manager. Frozen cgroups are thawed by
`clear_all` before teardown, and in any case by the cgroup kill of teardown; qdiscs go
with the node's links. Changes hold `Cluster.lock`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from vhpc.atomic import write_atomic
from vhpc.cluster import node as nodes_mod
from vhpc.cluster.cluster import Cluster
from vhpc.cluster.faults import (
    ActiveFault,
    FaultBook,
    FaultKind,
    FaultSpec,
    check_request,
    net_rules,
    parse_rate,
    split_per_node,
)
from vhpc.cluster.ledger import Kind
from vhpc.cluster.operations import scontrol_update
from vhpc.cluster.states import DaemonState
from vhpc.errors import ClusterStateError, FaultError
from vhpc.runtime.namespaces import NsPaths
from vhpc.runtime.netfault import (
    NODE_LINK,
    FaultRuntime,
    LinuxFaultRuntime,
    netem_args,
    render_table,
    table_name,
    tbf_args,
)
from vhpc.services import slurm as slurm_conf
from vhpc.spec import scale

log = logging.getLogger(__name__)
FAULTS_FILE = "faults.json"
NOT_RESPONDING = "Not responding"  # slurmctld's reason of a node it set DOWN
SETTLE_POLL = 0.5  # s between looks at Slurm while a heal waits for it


class FaultController:
    """Faults of one cluster: add, list, clear (all through `runtime`)."""

    def __init__(self, cluster: Cluster, runtime: FaultRuntime,
                 clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.cluster = cluster
        self.runtime = runtime
        self.clock = clock
        self.monotonic = monotonic  # with `sleep`: the wait for Slurm after a heal
        self.sleep = sleep
        self.path: Path = cluster.paths.root / FAULTS_FILE
        self.book = self._load()

    @classmethod
    def for_cluster(cls, cluster: Cluster) -> FaultController:
        """The controller over the real kernel (the cluster's own cgroup driver)."""
        from vhpc.runtime import cgroups

        driver = getattr(cluster.runtime, "cgroups", None) or cgroups.detect()
        return cls(cluster, LinuxFaultRuntime(driver))

    def _load(self) -> FaultBook:
        try:
            return FaultBook.from_dict(json.loads(self.path.read_text()))
        except FileNotFoundError:
            return FaultBook()
        except (ValueError, KeyError, TypeError) as err:
            log.warning("ignoring unreadable %s: %s", self.path, err)
            return FaultBook()

    def _save(self) -> None:
        if self.path.parent.exists():
            write_atomic(self.path, json.dumps(self.book.to_dict(), indent=1))

    # -- public -------------------------------------------------------------------------
    def active(self) -> list[ActiveFault]:
        """The active faults, oldest first."""
        return list(self.book.faults)

    def add(self, request: FaultSpec) -> list[ActiveFault]:
        """Check and inject a fault (one per node for node faults); its faults."""
        c = self.cluster
        with c.lock:
            if c.closing:
                raise ClusterStateError(f"cluster {c.spec.name!r} is being torn down")
            running = [d.spec.key for d in c.supervisor.daemons()
                       if d.state is DaemonState.RUNNING]
            spec = check_request(request, c.spec, self.book, running)
            if spec.kind is FaultKind.KILL:
                return [self._kill(spec)]
            added = [self.book.add(part, self.clock()) for part in split_per_node(spec)]
            try:
                for fault in added:
                    self._apply(fault)
                self._sync_table()
            except BaseException:
                with contextlib.suppress(Exception):  # the first error is the one to tell
                    self._undo_all(added)
                raise
            self._save()
        for fault in added:
            c.events.emit("fault_injected", f"fault {fault.id}: {fault.describe()}",
                          _event_node(fault), "warning")
        return added

    def clear(self, fault_id: str | None = None, kind: FaultKind | None = None,
              nodes: Iterable[str] = ()) -> list[ActiveFault]:
        """Undo faults by id, or by kind and/or node (all with neither); the cleared ones."""
        c = self.cluster
        with c.lock:
            chosen = self.book.select(fault_id, kind, nodes)
            self._undo_all(chosen)
            self._save()
        for fault in chosen:
            c.events.emit("fault_cleared", f"fault {fault.id} cleared: {fault.describe()}",
                          _event_node(fault))
        if not c.closing:
            self._return_to_service(chosen)
        return chosen

    def _return_to_service(self, cleared: list[ActiveFault]) -> None:
        """Wait until slurmctld has heard from the nodes of these faults again, resuming
        those it set DOWN as not responding (`settle_step`); at most `_settle_limit()`.

        slurmctld notices a heal only at its next ping, and a ping sent into the cut can
        fail after the heal: the node then goes DOWN 'Not responding' just after it (its
        jobs requeued), and slurmctld does not ping a node DOWN and not responding, so it
        stayed down for more than a minute. `state=resume` lets slurmctld ping it at once.
        Nodes still under another fault, or down or drained for another reason, are left
        alone. Returns when Slurm can use the nodes again (typically 1-2 s).
        """
        touched = {n for f in cleared if f.spec.kind is not FaultKind.KILL for n in f.spec.nodes}
        touched |= {n for f in cleared if f.spec.kind is FaultKind.PARTITION
                    for n in f.spec.peers}
        touched -= {n for f in self.book.faults for n in (*f.spec.nodes, *f.spec.peers)}
        deadline = self.monotonic() + self._settle_limit()
        resumed: set[str] = set()
        while touched and not self.cluster.closing:
            try:
                slurm = self.cluster.slurm
                resume, touched = settle_step(touched, slurm.node_states(),
                                              slurm.node_reasons())
                if resume:
                    scontrol_update(slurm, resume, "resume", "")
                    if not set(resume) <= resumed:
                        self.cluster.events.emit(
                            "fault_resumed", f"resumed {', '.join(resume)} in Slurm (set "
                            "DOWN as not responding during the fault)")
                    resumed |= set(resume)
            except Exception as err:  # Slurm may be down itself (a partitioned controller)
                log.warning("could not return nodes to service after clearing faults: %s", err)
                return
            if touched and self.monotonic() >= deadline:
                log.warning("slurmctld has not heard from %s since the fault was cleared",
                            ", ".join(sorted(touched)))
                return
            if touched:
                self.sleep(SETTLE_POLL)

    def _settle_limit(self) -> float:
        """How long a heal waits for slurmctld: its ping timeout past SlurmdTimeout."""
        return scale.slurmd_timeout(self.cluster.spec.max_nodes) + slurm_conf.MESSAGE_TIMEOUT

    def clear_all(self) -> list[ActiveFault]:
        """Undo every fault (before teardown: frozen nodes thawed, the table deleted)."""
        return self.clear()

    # -- internals ----------------------------------------------------------------------
    def _kill(self, spec: FaultSpec) -> ActiveFault:
        c = self.cluster
        daemon = next((d for d in c.supervisor.daemons() if d.spec.key == spec.daemon), None)
        if daemon is None or daemon.record is None or not self.runtime.kill(daemon.record):
            raise FaultError(f"{spec.daemon} is not running", fix="see 'vhpc status'")
        fault = self.book.add(spec, self.clock())
        self._save()
        c.events.emit("fault_injected", f"fault {fault.id}: {spec.daemon} killed "
                      f"(SIGKILL to pid {daemon.record.pid}); supervision restarts it",
                      daemon.spec.node, "warning")
        return fault

    def _undo_all(self, faults: list[ActiveFault]) -> None:
        """Undo faults (each whatever fails), forget them, re-render the table."""
        errors: list[Exception] = []
        for fault in faults:
            try:
                self._undo(fault)
            except Exception as err:  # undo the others all the same
                log.warning("could not undo fault %s: %s", fault.id, err)
                errors.append(err)
        self.book.remove(faults)
        self._sync_table()
        if errors:
            raise errors[0]

    def _apply(self, fault: ActiveFault) -> None:
        s = fault.spec
        for name in s.nodes:
            if s.kind is FaultKind.FREEZE:
                self.runtime.set_frozen(self._group(name), True)
            elif s.kind is FaultKind.RATE:
                self._qdisc(name, tbf_args(parse_rate(s.rate)))
            elif s.kind is FaultKind.DELAY and s.delay_ms is not None:
                self._qdisc(name, netem_args(s.delay_ms))

    def _undo(self, fault: ActiveFault) -> None:
        s = fault.spec
        for name in s.nodes:
            if s.kind is FaultKind.FREEZE:
                self.runtime.set_frozen(self._group(name), False)
            elif s.kind in (FaultKind.RATE, FaultKind.DELAY):
                self._qdisc(name, None)

    def _qdisc(self, name: str, args: list[str] | None) -> None:
        """The root qdisc of both ends of the node's link (to it, and from it)."""
        spec = self.cluster.spec
        self.runtime.set_qdisc(spec.veth_of(spec.node(name)), None, args)
        pin = NsPaths.under(self.cluster.paths.ns_dir, name).net
        self.runtime.set_qdisc(NODE_LINK, pin, args)

    def _group(self, name: str) -> str:
        return nodes_mod.cgroup_group(self.cluster.spec.name, name)

    def _sync_table(self) -> None:
        """The cluster's nftables table holds exactly the active cuts and losses."""
        spec, ledger = self.cluster.spec, self.cluster.ledger
        table = table_name(spec.name)
        cuts, losses = net_rules(self.book.faults, lambda n: spec.veth_of(spec.node(n)),
                                 lambda n: str(spec.ip_of(spec.node(n))))
        recorded = ledger.entries(Kind.NFT_TABLE)
        if cuts or losses:
            if not recorded:
                ledger.add(Kind.NFT_TABLE, table)
            self.runtime.apply_table(render_table(table, cuts, losses))
        elif recorded:
            self.runtime.delete_table(table)
            for entry in recorded:
                ledger.remove(entry)


def settle_step(nodes: set[str], states: dict[str, str], reasons: dict[str, str]
                ) -> tuple[list[str], set[str]]:
    """One look at Slurm after a heal: the nodes to resume (DOWN as not responding) and
    those slurmctld has not heard from yet (state flagged '*', or resumed just now); a
    node down or drained for another reason is not waited for."""
    resume = sorted(n for n in nodes if reasons.get(n) == NOT_RESPONDING)
    unheard = {n for n in nodes if states.get(n, "").endswith("*")
               and reasons.get(n, NOT_RESPONDING) == NOT_RESPONDING}
    return resume, unheard | set(resume)


def _event_node(fault: ActiveFault) -> str:
    nodes = fault.spec.nodes
    return nodes[0] if len(nodes) == 1 else ""
