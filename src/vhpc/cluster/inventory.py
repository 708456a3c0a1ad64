"""Nodes at run time: add, remove, stop, start; the registry and DNS follow, Slurm too.

`Inventory` wraps a live `Cluster`. Every change keeps three things in step: the spec
(<state>/spec.json, what a restarted manager adopts), the ledger (what teardown removes)
and the registry (what DNS serves and anyone can read). Compute nodes are Slurm dynamic
nodes: they join with `slurmd -Z` and leave with `scontrol delete`, slurmctld never
restarts. A health monitor marks a node whose slurmd the supervisor gave up on (ten quick
failures) DOWN in Slurm and withdraws it from DNS until `vhpc node start`.

Every change holds `Cluster.lock`, the one lock of cluster state mutations (add, remove,
stop, start, a lost node, teardown, adoption), and `add`/`remove` write an operation record
first (cluster/operations.py), so a manager killed in the middle leaves a change the next
one can roll back or finish.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from vhpc.cluster import node as nodes_mod
from vhpc.cluster import operations as ops
from vhpc.cluster import registry as reg
from vhpc.cluster import site_files
from vhpc.cluster.cluster import Cluster
from vhpc.cluster.operations import Operation, OpKind, SlurmControl
from vhpc.cluster.registry import DnsFeed, HttpEtcd, NodeRecord, Registry
from vhpc.cluster.states import DaemonState
from vhpc.cluster.teardown import remove_owned
from vhpc.errors import BootError, ClusterStateError, VhpcError
from vhpc.services import dnsmasq, etcd
from vhpc.spec import scale
from vhpc.spec.grow import AddRequest, check_removable, plan_add
from vhpc.spec.load import HostFacts
from vhpc.spec.model import NodeRole, NodeSpec
from vhpc.spec.placement import format_cpulist

log = logging.getLogger(__name__)

STOP_REASON = "stopped by vhpc"
LOST_REASON = "vhpc: node lost, slurmd kept failing"
REMOVE_REASON = ops.REMOVE_REASON
DRAIN_REASON = "vhpc: draining before removal"


@dataclass(frozen=True)
class Health:
    """What the monitor remembers about one node between checks."""

    lost: bool = False


def health_step(prev: Health, slurmd: DaemonState | None) -> tuple[Health, str | None]:
    """One check of one node: returns the new memory and 'lost', 'recovered' or None.

    The give-up policy is the supervisor's (supervisor.py): a node is lost when the
    supervisor has given up on its slurmd (FATAL, after ten quick failures in a row),
    never while a restart is still pending, however long its backoff. 'recovered' if its
    slurmd runs again after that.
    """
    if slurmd is DaemonState.RUNNING:
        return Health(), ("recovered" if prev.lost else None)
    if slurmd is DaemonState.FATAL and not prev.lost:
        return Health(True), "lost"
    return prev, None


def record_of(cluster: Cluster, node: NodeSpec, state: str | None = None) -> NodeRecord:
    """The registry record of a node."""
    return NodeRecord(
        name=node.name, role=node.role.value, ip=str(cluster.spec.ip_of(node)),
        cpuset=format_cpulist(node.cpuset), memory=node.memory, features=node.features,
        state=state or (reg.STOPPED if node.stopped else reg.UP),
    )


def host_facts() -> HostFacts:
    """CPUs and memory of this host (what added nodes are checked against)."""
    from vhpc.runtime.facts import mem_total, online_cpus

    return HostFacts(online_cpus=online_cpus(), mem_total=mem_total())


class Inventory:
    """Run-time changes to a live cluster's nodes, and the loops that follow them."""

    def __init__(self, cluster: Cluster, registry: Registry | None = None,
                 feed: DnsFeed | None = None, slurm: SlurmControl | None = None,
                 facts: Callable[[], HostFacts] = host_facts,
                 monitor_interval: float = 0.5) -> None:
        self.cluster = cluster
        self.registry = registry
        self.feed = feed
        self.slurm: SlurmControl = slurm or cluster.slurm
        self.facts = facts
        self.monitor_interval = monitor_interval
        self.lock = cluster.lock  # the one lock of cluster state mutations
        self.health: dict[str, Health] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def for_cluster(cls, cluster: Cluster) -> Inventory:
        """The inventory of a cluster with its real etcd registry and DNS feed."""
        url = etcd.client_url(cluster.spec)
        if url is None:
            return cls(cluster)
        kv = HttpEtcd(url, root_password=etcd.ensure_root_password(cluster.paths))
        prefix = etcd.key_prefix(cluster.spec)
        spec = cluster.spec

        def render(record: NodeRecord) -> str:
            return dnsmasq.render_node_hosts(spec, record.name, record.ip)

        registry = Registry(kv, prefix)
        feed = DnsFeed(kv, prefix, dnsmasq.hostsdir(cluster.paths), render,
                       ready=lambda: registry.lease != 0)
        return cls(cluster, registry, feed)

    # -- life cycle -------------------------------------------------------------------
    def start(self) -> None:
        """Publish every node, follow the registry into DNS, watch node health."""
        if self.registry is not None:
            self.registry.start([record_of(self.cluster, n) for n in self.cluster.spec.nodes])
        if self.feed is not None:
            self.feed.start()
        self._thread = threading.Thread(target=self._monitor_loop, name="node-monitor",
                                        daemon=True)
        self._thread.start()

    def stop(self, revoke: bool = False) -> None:
        """Stop the loops (before teardown, or when the manager exits). With `revoke`
        (the cluster goes) the monitor and DNS feed are not waited for: their daemon
        threads check the flag before they change anything, and a `sinfo` of theirs
        under way at 1024 nodes held `down` for seconds."""
        self._stop.set()
        if self._thread is not None and not revoke:
            self._thread.join(timeout=5)
        if self.feed is not None:
            self.feed.stop(wait=not revoke)
        if self.registry is not None:
            self.registry.stop(revoke)

    # -- queries ----------------------------------------------------------------------
    def nodes(self) -> list[dict[str, Any]]:
        """Every node: address, limits, registry state, Slurm state and reason."""
        states = self.slurm.node_states()
        reasons = self.slurm.node_reasons()
        records = self.registry.records if self.registry is not None else {}
        out = []
        for node in self.cluster.spec.nodes:
            record = records.get(node.name) or record_of(self.cluster, node)
            compute = node.role is NodeRole.COMPUTE
            out.append({
                "name": node.name, "role": node.role.value, "ip": record.ip,
                "cpuset": record.cpuset, "cpus": node.cpus, "memory": node.memory,
                "features": list(node.features), "state": record.state,
                "slurm_state": states.get(node.name, "unknown" if compute else "-"),
                "reason": reasons.get(node.name, ""),
                **site_files.node_site_fields(self.cluster.spec, node),
            })
        return out

    # -- add --------------------------------------------------------------------------
    def add(self, request: AddRequest, wait: bool = True,
            timeout: float | None = None) -> list[dict[str, Any]]:
        """Make and start new compute nodes; all or nothing (a failure rolls back)."""
        c = self.cluster
        with self.lock:
            self._check_open()
            before = c.spec
            added = plan_add(before, request, self.facts())
            names = [n.name for n in added]
            ops.begin(c.paths.root, Operation(OpKind.ADD, tuple(names)))
            try:
                c.build_nodes(list(added))
                c.start_computes(added)
                c.set_spec(before.with_nodes(before.nodes + added))
                for node in added:
                    if self.registry is not None:
                        self.registry.publish(record_of(c, node))
                if wait:
                    c.wait_idle(names, scale.add_timeout(len(names)) if timeout is None
                                else timeout)
                    self._dns_settled(present=names)
            except BaseException as err:
                log.error("adding %s failed: %s; rolling back", ",".join(names), err)
                for name in names:
                    if self.registry is not None:
                        self.registry.withdraw(name)
                self._dismantle(names)
                ops.forget_nodes(self.slurm, names)
                c.set_spec(before)
                ops.finish(c.paths.root)
                if isinstance(err, VhpcError | KeyboardInterrupt):
                    raise
                raise BootError(f"adding {len(names)} nodes failed: {err}") from err
            ops.finish(c.paths.root)
            self._racks_changed()
            c.events.emit("node_added", f"added {_names(names)} "
                          f"({added[0].cpus} CPUs, {added[0].memory // 2**20}M each)")
        return [json.loads(record_of(c, n).to_json()) for n in added]

    # -- remove -----------------------------------------------------------------------
    def remove(self, names: list[str], drain: bool = False,
               timeout: float = 3600.0) -> list[str]:
        """Remove compute nodes; with `drain`, first wait for their running jobs to end."""
        with self.lock:
            self._check_open()
            nodes = check_removable(self.cluster.spec, names)
        names = [n.name for n in nodes]
        if drain:
            self._scontrol_update(names, "drain", DRAIN_REASON)
            if self.registry is not None:
                for name in names:
                    self.registry.set_state(name, reg.DRAINING)
            self._wait_no_jobs(names, timeout)
        c = self.cluster
        with self.lock:
            self._check_open()
            nodes = check_removable(c.spec, names)  # still there?
            ops.begin(c.paths.root, Operation(OpKind.REMOVE, tuple(names)))
            for name in names:
                if self.registry is not None:
                    self.registry.withdraw(name)
                self.health.pop(name, None)
            leftovers = self._dismantle(names)
            ops.forget_nodes(self.slurm, names)
            gone = set(names)
            c.set_spec(c.spec.with_nodes(tuple(n for n in c.spec.nodes if n.name not in gone)))
            ops.finish(c.paths.root)
            self._racks_changed()
            c.events.emit("node_removed", f"removed {_names(names)}"
                          + (" after draining" if drain else ""))
            self._dns_settled(absent=names)
        return leftovers

    def _racks_changed(self) -> None:
        """Rewrite topology.conf after nodes came or went and have slurmctld re-read it
        (a cluster without racks has none)."""
        if site_files.write_topology(self.cluster.spec, self.cluster.paths):
            result = self.slurm.run(["scontrol", "reconfigure"], check=False)
            if result.returncode != 0:
                log.warning("scontrol reconfigure: %s", result.stderr.strip())

    def _dismantle(self, names: list[str]) -> list[str]:
        """Stop a node's daemons and remove what the ledger holds of it."""
        c = self.cluster
        leftovers: list[str] = []
        c.supervisor.stop_nodes(names, grace=2.0)  # all at once: one grace period
        for name in names:
            for daemon in c.supervisor.daemons(name):
                c.supervisor.remove(daemon.spec.key)
        leftovers += remove_owned(c.ledger, c.runtime, names)
        for name in names:
            shutil.rmtree(c.paths.node_dir(name), ignore_errors=True)
            shutil.rmtree(c.paths.slurm_spool / name, ignore_errors=True)
        return leftovers

    def _wait_no_jobs(self, names: list[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = self.slurm.run(["squeue", "-h", "-w", ",".join(names), "-o", "%i"],
                                    check=False)
            if result.returncode == 0 and not result.stdout.strip():
                return
            time.sleep(0.5)
        raise ClusterStateError(f"jobs still run on {_names(names)} after {timeout:.0f}s of "
                                "draining: cancel them (scancel) or remove without --drain")

    # -- stop / start -----------------------------------------------------------------
    def stop_node(self, name: str) -> None:
        """Stop every process of a node; it stays in the cluster, DOWN in Slurm."""
        c = self.cluster
        with self.lock:
            self._check_open()
            node = check_removable(c.spec, [name])[0]
            if node.stopped:
                raise ClusterStateError(f"node {name!r} is already stopped "
                                        f"('vhpc node start {name}' starts it)")
            self._set_stopped(node, True)
            self._scontrol_update([name], "down", STOP_REASON)
            if self.registry is not None:
                self.registry.set_state(name, reg.STOPPED)
            c.supervisor.stop_nodes([name])
            c.runtime.kill_cgroup(nodes_mod.cgroup_group(c.spec.name, name))
            self.health.pop(name, None)
            c.events.emit("node_stopped", f"stopped {name}", name)
            self._dns_settled(absent=[name])

    def start_node(self, name: str, wait: bool = True, timeout: float = 30.0) -> None:
        """Start a stopped node again; it returns to idle in Slurm."""
        c = self.cluster
        with self.lock:
            self._check_open()
            node = check_removable(c.spec, [name])[0]
            if not node.stopped:
                raise ClusterStateError(f"node {name!r} is not stopped")
            node = self._set_stopped(node, False)
            c.start_computes([node])
            if wait:
                self._wait_back(name, timeout)
            if self.registry is not None:
                self.registry.set_state(name, reg.UP)
            c.events.emit("node_started", f"started {name}", name)
            if wait:
                self._dns_settled(present=[name])

    def _wait_back(self, name: str, timeout: float) -> None:
        """Wait for a restarted node to register; resume it if Slurm kept it DOWN."""
        deadline = time.monotonic() + timeout
        resumed = False
        while time.monotonic() < deadline:
            state = self.slurm.node_states().get(name, "").rstrip("*~#")
            if state == "idle" or state.startswith(("mix", "alloc")):
                return
            if state.startswith("down") and not resumed and self._slurmd_running(name):
                self._scontrol_update([name], "resume", "")
                resumed = True
            time.sleep(0.1)
        raise BootError(f"node {name} did not come back within {timeout:.0f}s; see "
                        f"{self.cluster.paths.daemon_log('slurmd', name)}")

    def _dns_settled(self, present: list[str] | None = None,
                     absent: list[str] | None = None) -> None:
        """Return once DNS follows the registry (a warning, not an error, if it lags)."""
        if self.feed is not None and not self.feed.wait_for(present or (), absent or ()):
            log.warning("DNS did not follow the registry within 3s (%s)",
                        ",".join((present or []) + (absent or [])))

    def _set_stopped(self, node: NodeSpec, stopped: bool) -> NodeSpec:
        c = self.cluster
        new = replace(node, stopped=stopped)
        c.set_spec(c.spec.with_nodes(tuple(new if n.name == node.name else n
                                           for n in c.spec.nodes)))
        return new

    def _slurmd_running(self, name: str) -> bool:
        return any(d.spec.name == "slurmd" and d.state is DaemonState.RUNNING
                   for d in self.cluster.supervisor.daemons(name))

    def _scontrol_update(self, names: list[str], state: str, reason: str) -> None:
        ops.scontrol_update(self.slurm, names, state, reason)

    def _check_open(self) -> None:
        """Refuse changes once teardown has begun (it holds the same lock)."""
        if self.cluster.closing:
            raise ClusterStateError(f"cluster {self.cluster.spec.name!r} is being taken "
                                    "down: nodes cannot change any more")

    # -- health -----------------------------------------------------------------------
    def check_health(self) -> list[tuple[str, str]]:
        """One round of the monitor; returns the (node, 'lost'|'recovered') changes."""
        c = self.cluster
        changes = []
        with self.lock:
            if c.closing:
                return []
            slurmds = {d.spec.node: d.state for d in c.supervisor.daemons()
                       if d.spec.name == "slurmd"}
            for node in c.spec.computes:
                if node.stopped:
                    continue
                prev = self.health.get(node.name, Health())
                new, change = health_step(prev, slurmds.get(node.name))
                self.health[node.name] = new
                if change is not None:
                    changes.append((node.name, change))
            for name, change in changes:
                self._on_health_change(name, change)
        return changes

    def _on_health_change(self, name: str, change: str) -> None:
        c = self.cluster
        if change == "lost":
            # Stop trying: the node stays DOWN and out of DNS until `vhpc node start`
            # (kept as stopped in the spec, so a restarted manager does not revive it).
            c.supervisor.stop_nodes([name])
            c.runtime.kill_cgroup(nodes_mod.cgroup_group(c.spec.name, name))
            self._set_stopped(c.spec.node(name), True)
            self._scontrol_update([name], "down", LOST_REASON)
            if self.registry is not None:
                self.registry.set_state(name, reg.LOST)
            c.events.emit("node_lost", f"{name} lost: its slurmd kept failing (the supervisor "
                          f"gave up); DOWN in Slurm and out of DNS until 'vhpc node start "
                          f"{name}'", name, "error")
        else:
            if self.slurm.node_reasons().get(name, "") == LOST_REASON:
                self._scontrol_update([name], "resume", "")
            if self.registry is not None:
                self.registry.set_state(name, reg.UP)
            c.events.emit("node_recovered", f"{name} is back", name, "warning")

    def _monitor_loop(self) -> None:
        while not self._stop.wait(self.monitor_interval):
            try:
                self.check_health()
            except (VhpcError, OSError) as err:
                log.warning("node monitor: %s", err)


def _names(names: list[str]) -> str:
    return ", ".join(names) if len(names) <= 4 else f"{names[0]}..{names[-1]} ({len(names)})"
