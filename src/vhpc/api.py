"""The façade every front end uses: the manager serves it over HTTP (unix socket for the
CLI and Python API, 127.0.0.1 for the dashboard); nothing else talks to a live Cluster.
"""

from __future__ import annotations

import threading
import time
from enum import StrEnum
from typing import Any

from vhpc.cluster.cluster import Cluster
from vhpc.cluster.inventory import Inventory
from vhpc.errors import ClusterStateError
from vhpc.observe import Observer
from vhpc.runtime.facts import online_cpus


class Phase(StrEnum):
    """Where the cluster is in its life."""

    BOOTING = "booting"
    READY = "ready"
    STOPPING = "stopping"
    FAILED = "failed"


class ClusterAPI:
    """Operations on one live cluster, returning JSON-ready data."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.phase = Phase.BOOTING
        self.progress: dict[str, Any] = {"message": "starting", "done": 0, "total": 0}
        self.error = ""
        self.dashboard_url = ""
        self.started = time.time()
        self.lock = threading.RLock()
        self.inventory: Inventory | None = None  # set by the manager once the cluster is up
        self.observer: Observer | None = None  # likewise (vhpc.observe)
        self.token = ""  # required on TCP for mutating requests (web/observe_routes.py)
        self.public = False  # dashboard on a non-loopback address: reads need it too

    def set_progress(self, message: str, done: int, total: int) -> None:
        """Called by the boot code as it goes."""
        self.progress = {"message": message, "done": done, "total": total}

    def status(self, max_age: float = 0.0) -> dict[str, Any]:
        """The cluster: phase, nodes with limits/usage/state/daemons, jobs.

        Slurm's view may be up to `max_age` seconds old (0: read it now).
        """
        c = self.cluster
        ready = self.phase is Phase.READY
        slurm = c.slurm_view.snapshot(max_age) if ready else None
        states = slurm.nodes if slurm else {}
        return {
            "cluster": c.spec.name,
            "phase": self.phase.value,
            "progress": self.progress,
            "error": self.error,
            "subnet": str(c.spec.subnet),
            "bridge": c.spec.bridge,
            "partition": c.spec.partition,
            "state_dir": str(c.paths.root),
            "slurm_conf": str(c.paths.slurm_conf),
            "cgroup_version": c.runtime.cgroup_version,
            "host_cpus": list(online_cpus()),
            "dashboard": self.dashboard_url,
            "uptime": round(time.time() - self.started, 1),
            "nodes": c.node_status(states) if ready else [],
            "jobs": slurm.jobs if slurm else [],
            "slurm_age": round(time.time() - slurm.ts, 2) if slurm else None,
        }

    def events(self, since: float = 0.0) -> list[dict[str, Any]]:
        """Recent cluster events."""
        return [e.to_dict() for e in self.cluster.events.recent(since)]

    def down(self) -> list[str]:
        """Stop and remove everything the cluster made; return leftovers (normally none)."""
        with self.lock:
            self.phase = Phase.STOPPING
            if self.inventory is not None:
                self.inventory.stop(revoke=True)
            self.stop_observer()  # before teardown removes its state directory
            return self.cluster.teardown()

    def stop_observer(self) -> None:
        """Stop the sampler and log tailer (idempotent)."""
        observer, self.observer = self.observer, None
        if observer is not None:
            observer.stop()

    # -- nodes at run time (cluster/inventory.py) -------------------------------------
    def _inventory(self) -> Inventory:
        if self.inventory is None or self.phase is not Phase.READY:
            raise ClusterStateError(f"cluster {self.cluster.spec.name!r} is {self.phase.value}: "
                                    "nodes can be changed once it is ready")
        return self.inventory

    def nodes(self) -> list[dict[str, Any]]:
        """Every node with its registry state and Slurm state/reason."""
        return self._inventory().nodes()

    def add_nodes(self, names: list[str], count: int = 0, memory: str | None = None,
                  cpus: int | None = None, cpuset: str | None = None,
                  features: list[str] | None = None, wait: bool = True,
                  timeout: float = 120.0) -> list[dict[str, Any]]:
        """Add compute nodes (by name or count); returns their records once idle."""
        from vhpc.spec.grow import AddRequest

        request = AddRequest(tuple(names), count, memory, cpus, cpuset, tuple(features or ()))
        return self._inventory().add(request, wait=wait, timeout=timeout)

    def remove_nodes(self, names: list[str], drain: bool = False,
                     timeout: float = 3600.0) -> list[str]:
        """Remove compute nodes (after draining them, if asked); returns leftovers."""
        return self._inventory().remove(names, drain=drain, timeout=timeout)

    def stop_node(self, name: str) -> None:
        """Stop a node's processes; DOWN in Slurm with a reason, out of DNS."""
        self._inventory().stop_node(name)

    def start_node(self, name: str, wait: bool = True) -> None:
        """Start a stopped node; back to idle."""
        self._inventory().start_node(name, wait=wait)
