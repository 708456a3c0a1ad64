"""The façade every front end uses: :class:`ManagerAPI` is what the web app serves, and
:class:`ClusterAPI` is the real one over a live Cluster, its Inventory and its Observer.

The manager (``vhpc.server``) builds a ClusterAPI once the cluster is up, complete; the
web app (``vhpc.web.app``) serves any object with the ManagerAPI shape, so the fast HTTP
tests use a fake. Every method returns a model of :mod:`vhpc.models`.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Protocol

from vhpc.errors import ClusterStateError, ServiceUnavailableError
from vhpc.models import (
    AddNodesRequest,
    AddUserRequest,
    DownResult,
    Event,
    Fault,
    FaultKind,
    FaultRequest,
    Health,
    Job,
    JobList,
    LogLine,
    MetricSeries,
    NodeInfo,
    NodeStatus,
    Phase,
    Progress,
    Status,
    UserInfo,
    UserList,
)

if TYPE_CHECKING:
    from vhpc.cluster.cluster import Cluster
    from vhpc.cluster.fault_control import FaultController
    from vhpc.cluster.inventory import Inventory
    from vhpc.observe import Observer

log = logging.getLogger(__name__)
EPOCH_CUTOFF = 1e9  # an events `since` above this is a Unix time, below an age


class ManagerAPI(Protocol):
    """What the manager's web app needs of the cluster (the real one, or a test's fake)."""

    @property
    def name(self) -> str:
        """The cluster's name."""
        ...

    @property
    def stream_interval(self) -> float:
        """Seconds between status documents on the event stream (the sampling interval)."""
        ...

    def health(self) -> Health:
        """Phase and uptime; runs no Slurm command."""
        ...

    def status(self, max_age: float = 0.0, with_metrics: bool = False) -> Status:
        """The status document; Slurm's view may be `max_age` s old."""
        ...

    def events(self, since: float = 0.0, limit: int = 200) -> list[Event]:
        """Recent events, newest first (`since`: Unix time, or an age below 1e9)."""
        ...

    def nodes(self) -> list[NodeInfo]:
        """Every node with its registry state and Slurm state/reason."""
        ...

    def add_nodes(self, request: AddNodesRequest) -> list[NodeInfo]:
        """Add compute nodes; their records."""
        ...

    def remove_nodes(self, names: list[str], drain: bool = False) -> list[str]:
        """Remove compute nodes; leftovers."""
        ...

    def stop_node(self, name: str) -> None:
        """Stop a node's processes."""
        ...

    def start_node(self, name: str, wait: bool = True) -> None:
        """Start a stopped node."""
        ...

    def down(self, keep_logs: bool = False) -> DownResult:
        """Tear the cluster down (keeping its logs aside if asked)."""
        ...

    def users(self) -> UserList:
        """The cluster's users (the default one first) and whether accounting is on."""
        ...

    def add_user(self, request: AddUserRequest) -> UserInfo:
        """Add a cluster user (passwd, home, Slurm association) at run time."""
        ...

    def jobs(self, finished: bool = False, since: float = 0.0, limit: int = 500) -> JobList:
        """Jobs, newest first: live ones; with `finished`, ended ones too."""
        ...

    def metrics(self, metric: str, since: float, node: str | None) -> list[MetricSeries]:
        """Sampled series of one metric (`since`: age in seconds)."""
        ...

    def logs(self, q: str | None, node: str | None, service: str | None, level: str | None,
             since: float | None, limit: int) -> list[LogLine]:
        """Central log lines, newest first."""
        ...

    def prometheus(self) -> bytes:
        """The Prometheus exposition text."""
        ...

    def add_fault(self, request: FaultRequest) -> list[Fault]:
        """Inject a fault (one per node for node faults); the faults made."""
        ...

    def faults(self) -> list[Fault]:
        """The active faults, oldest first."""
        ...

    def clear_faults(self, fault_id: str | None = None, kind: FaultKind | None = None,
                     nodes: list[str] | None = None) -> list[Fault]:
        """Undo faults by id, or by kind and/or node (every one with none); the cleared."""
        ...

    def log_cursor(self) -> int | None:
        """The newest log line's id, or None once observability stopped (down)."""
        ...

    def wait_logs(self, after_id: int, timeout: float) -> list[LogLine]:
        """Log lines newer than `after_id`, oldest first, waiting up to `timeout` s."""
        ...


class ClusterAPI:
    """Operations on one live cluster, returning typed documents (vhpc.models)."""

    def __init__(self, cluster: Cluster, inventory: Inventory, observer: Observer,
                 dashboard_url: str) -> None:
        self.cluster = cluster
        self.inventory = inventory
        self.observer: Observer | None = observer  # None once stopped
        self.dashboard_url = dashboard_url
        self.phase = Phase.READY
        self.started = time.time()
        self.lock = threading.RLock()
        self.fault_control: FaultController | None = None  # made on first use

    @property
    def name(self) -> str:
        """The cluster's name."""
        return self.cluster.spec.name

    @property
    def stream_interval(self) -> float:
        """The sampler's interval."""
        return self._observer().interval

    def _observer(self) -> Observer:
        observer = self.observer
        if observer is None:
            raise ServiceUnavailableError(
                f"observability of cluster {self.name!r} is not running ({self.phase.value})")
        return observer

    def progress(self) -> Progress:
        """What the manager is doing: ready (all nodes made) or stopping."""
        total = len(self.cluster.spec.nodes)
        if self.phase is Phase.READY:
            return Progress(message="ready", done=total, total=total)
        return Progress(message=self.phase.value, done=0, total=total)

    def health(self) -> Health:
        """Phase and uptime."""
        return Health(cluster=self.name, phase=self.phase, dashboard=self.dashboard_url,
                      uptime=round(time.time() - self.started, 1))

    def status(self, max_age: float = 0.0, with_metrics: bool = False) -> Status:
        """The cluster: phase, nodes with limits/usage/state/daemons, jobs.

        Slurm's view may be up to `max_age` seconds old (0: read it now); `with_metrics`
        merges the sampler's latest CPU, network and process numbers into each node.
        """
        from vhpc.runtime.facts import online_cpus
        from vhpc.runtime.slurm_version import host_version

        c = self.cluster
        ready = self.phase is Phase.READY
        slurm = c.slurm_view.snapshot(max_age) if ready else None
        nodes = [NodeStatus.model_validate(n)
                 for n in (c.node_status(slurm.nodes if slurm else {}) if ready else [])]
        if with_metrics and self.observer is not None:
            nodes = _merge_metrics(nodes, self.observer.node_metrics())
        return Status(
            cluster=c.spec.name, phase=self.phase, progress=self.progress(),
            subnet=str(c.spec.subnet), bridge=c.spec.bridge, partition=c.spec.partition,
            state_dir=str(c.paths.root), slurm_conf=str(c.paths.slurm_conf),
            cgroup_version=c.runtime.cgroup_version, host_cpus=list(online_cpus()),
            slurm_version=c.spec.slurm_version or host_version(),  # '': booted before
            image=c.spec.image,
            dashboard=self.dashboard_url, uptime=round(time.time() - self.started, 1),
            nodes=nodes, jobs=[Job.model_validate(j) for j in (slurm.jobs if slurm else [])],
            slurm_age=round(time.time() - slurm.ts, 2) if slurm else None)

    def events(self, since: float = 0.0, limit: int = 200) -> list[Event]:
        """Recent events, newest first: from the log store (kept across manager restarts)
        while observability runs, else the cluster's in-memory list."""
        age = max(0.0, time.time() - since) if since > EPOCH_CUTOFF else since
        observer = self.observer
        if observer is None:
            cutoff = time.time() - age if age else 0.0
            recent = self.cluster.events.recent(cutoff)[::-1]  # kept oldest first
            return [Event(ts=e.ts, kind=e.kind, node=e.node, level=e.level,
                          message=e.message) for e in recent[:limit]]
        rows = observer.log_store.events(since=time.time() - age if age else None,
                                         limit=limit)
        return [Event(id=r.id, ts=r.ts, kind=r.kind or "event", node=r.node, level=r.level,
                      message=r.message) for r in rows]

    def down(self, keep_logs: bool = False) -> DownResult:
        """Stop and remove everything the cluster made; leftovers (normally none) and,
        with `keep_logs`, where its logs now are (cluster/kept_logs.py)."""
        log.info("down: requested")  # (the manager's session is weighted: server/manager.py)
        with self.lock:
            started = time.monotonic()
            self._clear_faults_before_down()
            self.phase = Phase.STOPPING
            faults = time.monotonic()
            # both wait for their threads' rounds under way: side by side
            observer = threading.Thread(target=self.stop_observer, name="observer-stop")
            observer.start()
            self.inventory.stop(revoke=True)
            registry = time.monotonic()
            observer.join()  # before teardown removes its state directory
            log.info("down: faults cleared in %.2fs, registry stopped in %.2fs, observer "
                     "%.2fs later", faults - started, registry - faults,
                     time.monotonic() - registry)
            leftovers = self.cluster.teardown(keep_logs=keep_logs)
            kept = self.cluster.kept_logs if keep_logs else None
            return DownResult(ok=not leftovers, leftovers=leftovers,
                              logs=str(kept) if kept else "")

    def stop_observer(self) -> None:
        """Stop the sampler and log tailer (idempotent)."""
        observer, self.observer = self.observer, None
        if observer is not None:
            observer.stop()

    # -- users (cluster/user_admin.py) ------------------------------------------------
    def users(self) -> UserList:
        """The cluster's users (the default one first) and whether accounting is on."""
        from vhpc.cluster.user_admin import all_users
        from vhpc.services.slurmdbd import db_node

        spec, home = self.cluster.spec, self.cluster.paths.home
        return UserList(users=[UserInfo(name=u.name, account=u.account, uid=u.uid,
                                        home=str(home / u.name), default=u.name == spec.user)
                               for u in all_users(spec)],
                        accounting=db_node(spec) is not None)

    def add_user(self, request: AddUserRequest) -> UserInfo:
        """Add a cluster user (passwd, home, Slurm association) at run time."""
        from vhpc.cluster.user_admin import add_user

        if self.phase is not Phase.READY:
            raise ClusterStateError(f"cluster {self.name!r} is {self.phase.value}: "
                                    "users can be added once it is ready")
        user = add_user(self.cluster, request.name, request.account, request.new_account)
        return UserInfo(name=user.name, account=user.account, uid=user.uid,
                        home=str(self.cluster.paths.home / user.name))

    def jobs(self, finished: bool = False, since: float = 0.0, limit: int = 500) -> JobList:
        """Jobs, newest first: pending and running ones from slurmctld; with `finished`,
        ended ones too (slurmctld keeps them MinJobAge seconds; with accounting, sacct
        has every one since `since`, a Unix time, with its MaxRSS)."""
        from vhpc.services.jobs import read_jobs

        if self.phase is not Phase.READY:
            raise ClusterStateError(f"cluster {self.name!r} is {self.phase.value}: "
                                    "its jobs can be listed once it is ready")
        c = self.cluster
        records = read_jobs(c.slurm, c.spec.accounting, finished, since, limit)
        return JobList(jobs=[Job.model_validate(r.to_dict()) for r in records],
                       accounting=c.spec.accounting)

    # -- nodes at run time (cluster/inventory.py) -------------------------------------
    def _inventory(self) -> Inventory:
        if self.phase is not Phase.READY:
            raise ClusterStateError(f"cluster {self.name!r} is {self.phase.value}: "
                                    "nodes can be changed once it is ready")
        return self.inventory

    def nodes(self) -> list[NodeInfo]:
        """Every node with its registry state and Slurm state/reason."""
        return [NodeInfo.model_validate(n) for n in self._inventory().nodes()]

    def add_nodes(self, request: AddNodesRequest) -> list[NodeInfo]:
        """Add compute nodes (by name or count); their records (once idle, if asked)."""
        from vhpc.spec.grow import AddRequest

        grow = AddRequest(tuple(request.names), request.count, request.memory, request.cpus,
                          request.cpuset, tuple(request.features), gpus=request.gpus,
                          group=request.group)
        added = self._inventory().add(grow, wait=request.wait)  # waits longer for more nodes
        names = {str(a["name"]) for a in added}
        return [n for n in self.nodes() if n.name in names]

    def remove_nodes(self, names: list[str], drain: bool = False) -> list[str]:
        """Remove compute nodes (after draining them, if asked); returns leftovers."""
        self._clear_faults_of(names)
        return self._inventory().remove(names, drain=drain, timeout=3600.0)

    def stop_node(self, name: str) -> None:
        """Stop a node's processes; DOWN in Slurm with a reason, out of DNS."""
        self._clear_faults_of([name])  # a frozen daemon would not stop
        self._inventory().stop_node(name)

    def start_node(self, name: str, wait: bool = True) -> None:
        """Start a stopped node; back to idle."""
        self._inventory().start_node(name, wait=wait)

    # -- faults (cluster/fault_control.py) ----------------------------------------------
    def _faults(self) -> FaultController:
        from vhpc.cluster.fault_control import FaultController

        if self.fault_control is None:
            self.fault_control = FaultController.for_cluster(self.cluster)
        return self.fault_control

    def add_fault(self, request: FaultRequest) -> list[Fault]:
        """Inject a fault (one per node for node faults); the faults made."""
        from vhpc.cluster.faults import FaultKind as Kind
        from vhpc.cluster.faults import FaultSpec

        if self.phase is not Phase.READY:
            raise ClusterStateError(f"cluster {self.name!r} is {self.phase.value}: "
                                    "faults can be injected once it is ready")
        spec = FaultSpec(Kind(request.kind.value), tuple(request.nodes), tuple(request.peers),
                         request.percent, request.rate, request.delay_ms, request.daemon)
        return [Fault.model_validate(f.to_dict()) for f in self._faults().add(spec)]

    def faults(self) -> list[Fault]:
        """The active faults, oldest first."""
        return [Fault.model_validate(f.to_dict()) for f in self._faults().active()]

    def clear_faults(self, fault_id: str | None = None, kind: FaultKind | None = None,
                     nodes: list[str] | None = None) -> list[Fault]:
        """Undo faults by id, or by kind and/or node (every one with none); the cleared."""
        from vhpc.cluster.faults import FaultKind as Kind

        cleared = self._faults().clear(fault_id, Kind(kind.value) if kind else None,
                                       nodes or ())
        return [Fault.model_validate(f.to_dict()) for f in cleared]

    def _clear_faults_of(self, names: list[str]) -> None:
        """Undo the faults on nodes about to be stopped or removed."""
        if self.fault_control is None and not (self.cluster.paths.root / "faults.json").exists():
            return
        faults = self._faults()
        if faults.book.select(nodes=names):
            faults.clear(nodes=names)

    def _clear_faults_before_down(self) -> None:
        """Thaw, heal and unshape before teardown (teardown would cope, but slower)."""
        if self.fault_control is None and not (self.cluster.paths.root / "faults.json").exists():
            return
        try:
            self._faults().clear_all()
        except Exception as err:  # teardown removes what is left by the ledger
            import logging

            logging.getLogger(__name__).warning("clearing faults before down: %s", err)

    # -- observability (vhpc.observe) --------------------------------------------------
    def metrics(self, metric: str, since: float, node: str | None) -> list[MetricSeries]:
        """Sampled series of one metric per node, plus ``_total``."""
        doc = self._observer().metrics_json(metric, since, node or None)
        return [MetricSeries.model_validate(s) for s in doc["series"]]

    def logs(self, q: str | None, node: str | None, service: str | None, level: str | None,
             since: float | None, limit: int) -> list[LogLine]:
        """Central log lines, newest first."""
        doc = self._observer().logs_json(q, node, service, level, since, limit)
        return [LogLine.model_validate(r) for r in doc["logs"]]

    def prometheus(self) -> bytes:
        """Prometheus exposition text."""
        return self._observer().prometheus_text()

    def log_cursor(self) -> int | None:
        """The newest log line's id, or None once observability stopped."""
        observer = self.observer
        return None if observer is None else observer.log_store.last_id()

    def wait_logs(self, after_id: int, timeout: float) -> list[LogLine]:
        """Log lines after an id, oldest first."""
        rows = self._observer().wait_logs(after_id, timeout)
        return [LogLine.model_validate(r.to_dict()) for r in rows]


def _merge_metrics(nodes: list[NodeStatus],
                   metrics: dict[str, dict[str, object]]) -> list[NodeStatus]:
    """Nodes with the sampler's latest numbers in place of the ones read now."""
    out = []
    for node in nodes:
        update = {k: v for k, v in metrics.get(node.name, {}).items() if v is not None}
        out.append(node.model_copy(update=update) if update else node)
    return out
