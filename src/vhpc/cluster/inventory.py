"""Nodes at run time: add, remove, stop, start; the registry and DNS follow, Slurm too.

`Inventory` wraps a live `Cluster`. Every change keeps three things in step: the spec
(<state>/spec.json, what a restarted manager adopts), the ledger (what teardown removes)
and the registry (what DNS serves and anyone can read). Compute nodes are Slurm dynamic
nodes: they join with `slurmd -Z` and leave with `scontrol delete`, slurmctld never
restarts. A health monitor marks a node whose processes all died DOWN in Slurm and
withdraws it from DNS until its slurmd runs again.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from vhpc.cluster import node as nodes_mod
from vhpc.cluster import registry as reg
from vhpc.cluster.cluster import Cluster
from vhpc.cluster.registry import DnsFeed, HttpEtcd, NodeRecord, Registry
from vhpc.cluster.states import DaemonState
from vhpc.cluster.teardown import remove_owned
from vhpc.errors import BootError, ClusterStateError, VhpcError
from vhpc.runtime.hostops import CommandResult
from vhpc.services import dnsmasq, etcd
from vhpc.spec.grow import AddRequest, check_removable, plan_add
from vhpc.spec.load import HostFacts
from vhpc.spec.model import NodeRole, NodeSpec
from vhpc.spec.placement import format_cpulist

log = logging.getLogger(__name__)

STOP_REASON = "stopped by vhpc"
LOST_REASON = "vhpc: node lost, all its processes died"
REMOVE_REASON = "removed by vhpc"
DRAIN_REASON = "vhpc: draining before removal"


class SlurmControl(Protocol):
    """The Slurm client calls the inventory makes (SlurmClient implements it)."""

    def run(self, argv: list[str], check: bool = True,
            timeout: float = 30.0) -> CommandResult: ...
    def node_states(self) -> dict[str, str]: ...
    def node_reasons(self) -> dict[str, str]: ...


@dataclass(frozen=True)
class Health:
    """What the monitor remembers about one node between checks."""

    dead_since: float | None = None
    lost: bool = False


def health_step(prev: Health, slurmd_running: bool, processes: int, now: float,
                grace: float) -> tuple[Health, str | None]:
    """One check of one node: returns the new memory and 'lost', 'recovered' or None.

    A node is lost when its slurmd is not running and no process at all is left in its
    cgroup for `grace` seconds (a single slurmd crash is restarted within half a second
    and never counts). 'recovered' if its slurmd runs again before that is acted on.
    """
    if slurmd_running:
        return Health(), ("recovered" if prev.lost else None)
    if processes > 0:
        return replace(prev, dead_since=None), None
    since = prev.dead_since if prev.dead_since is not None else now
    if not prev.lost and now - since >= grace:
        return Health(since, True), "lost"
    return Health(since, prev.lost), None


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
                 facts: Callable[[], HostFacts] = host_facts, monitor_interval: float = 0.5,
                 lost_grace: float = 1.0) -> None:
        self.cluster = cluster
        self.registry = registry
        self.feed = feed
        self.slurm: SlurmControl = slurm or cluster.slurm
        self.facts = facts
        self.monitor_interval = monitor_interval
        self.lost_grace = lost_grace
        self.lock = threading.RLock()
        self.health: dict[str, Health] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def for_cluster(cls, cluster: Cluster) -> Inventory:
        """The inventory of a cluster with its real etcd registry and DNS feed."""
        url = etcd.client_url(cluster.spec)
        if url is None:
            return cls(cluster)
        kv = HttpEtcd(url)
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
        """Stop the loops (before teardown, or when the manager exits)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.feed is not None:
            self.feed.stop()
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
            })
        return out

    # -- add --------------------------------------------------------------------------
    def add(self, request: AddRequest, wait: bool = True,
            timeout: float = 60.0) -> list[dict[str, Any]]:
        """Make and start new compute nodes; all or nothing (a failure rolls back)."""
        c = self.cluster
        with self.lock:
            before = c.spec
            added = plan_add(before, request, self.facts())
            names = [n.name for n in added]
            try:
                c.build_nodes(list(added))
                c.start_computes(added)
                c.spec = before.with_nodes(before.nodes + added)
                c.spec_path_write()
                for node in added:
                    if self.registry is not None:
                        self.registry.publish(record_of(c, node))
                if wait:
                    c.wait_idle(names, timeout)
                    self._dns_settled(present=names)
            except BaseException as err:
                log.error("adding %s failed: %s; rolling back", ",".join(names), err)
                for name in names:
                    if self.registry is not None:
                        self.registry.withdraw(name)
                self._dismantle(names)
                self._slurm_forget(names)
                c.spec = before
                c.spec_path_write()
                if isinstance(err, VhpcError | KeyboardInterrupt):
                    raise
                raise BootError(f"adding {len(names)} nodes failed: {err}") from err
            c.events.emit("node_added", f"added {_names(names)} "
                          f"({added[0].cpus} CPUs, {added[0].memory // 2**20}M each)")
        return [json.loads(record_of(c, n).to_json()) for n in added]

    # -- remove -----------------------------------------------------------------------
    def remove(self, names: list[str], drain: bool = False,
               timeout: float = 3600.0) -> list[str]:
        """Remove compute nodes; with `drain`, first wait for their running jobs to end."""
        with self.lock:
            nodes = check_removable(self.cluster.spec, names)
        names = [n.name for n in nodes]
        if drain:
            self._scontrol_update(names, "drain", DRAIN_REASON)
            if self.registry is not None:
                for name in names:
                    self.registry.set_state(name, reg.DRAINING)
            self._wait_no_jobs(names, timeout)
        with self.lock:
            nodes = check_removable(self.cluster.spec, names)  # still there?
            for name in names:
                if self.registry is not None:
                    self.registry.withdraw(name)
                self.health.pop(name, None)
            leftovers = self._dismantle(names)
            self._slurm_forget(names)
            gone = set(names)
            c = self.cluster
            c.spec = c.spec.with_nodes(tuple(n for n in c.spec.nodes if n.name not in gone))
            c.spec_path_write()
            c.events.emit("node_removed", f"removed {_names(names)}"
                          + (" after draining" if drain else ""))
            self._dns_settled(absent=names)
        return leftovers

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

    def _slurm_forget(self, names: list[str]) -> None:
        """Delete dynamic nodes from slurmctld (their slurmd has exited)."""
        known = set(self.slurm.node_states())
        present = [n for n in names if n in known]
        if not present:
            return
        self._scontrol_update(present, "down", REMOVE_REASON)
        deadline = time.monotonic() + 15
        while True:
            result = self.slurm.run(["scontrol", "delete", f"nodename={','.join(present)}"],
                                    check=False)
            if result.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.2)  # jobs being killed on it still count as running
        if result.returncode != 0:
            log.warning("scontrol delete %s: %s", ",".join(present), result.stderr.strip())

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
        c.spec = c.spec.with_nodes(tuple(new if n.name == node.name else n
                                         for n in c.spec.nodes))
        c.spec_path_write()
        return new

    def _slurmd_running(self, name: str) -> bool:
        return any(d.spec.name == "slurmd" and d.state is DaemonState.RUNNING
                   for d in self.cluster.supervisor.daemons(name))

    def _scontrol_update(self, names: list[str], state: str, reason: str) -> None:
        argv = ["scontrol", "update", f"nodename={','.join(names)}", f"state={state}"]
        if reason:
            argv.append(f"reason={reason}")
        result = self.slurm.run(argv, check=False)
        if result.returncode != 0:
            log.warning("%s: %s", " ".join(argv), result.stderr.strip())

    # -- health -----------------------------------------------------------------------
    def check_health(self, now: float | None = None) -> list[tuple[str, str]]:
        """One round of the monitor; returns the (node, 'lost'|'recovered') changes."""
        c = self.cluster
        now = time.monotonic() if now is None else now
        changes = []
        with self.lock:
            running = {d.spec.node for d in c.supervisor.daemons()
                       if d.spec.name == "slurmd" and d.state is DaemonState.RUNNING}
            for node in c.spec.computes:
                if node.stopped:
                    continue
                up = node.name in running
                procs = 0 if up else len(c.runtime.cgroup_pids(
                    nodes_mod.cgroup_group(c.spec.name, node.name)))
                prev = self.health.get(node.name, Health())
                new, change = health_step(prev, up, procs, now, self.lost_grace)
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
            c.events.emit("node_lost", f"{name} lost: every process died; DOWN in Slurm "
                          f"and out of DNS until 'vhpc node start {name}'", name, "error")
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
