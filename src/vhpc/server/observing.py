"""Glue between a live Cluster and vhpc.observe: node handles, Slurm gauges, events.

The manager builds one Observer per cluster with :func:`make_observer` after boot or
adopt; the ClusterAPI stops it before teardown removes the state directory.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from vhpc.cluster import node as nodes_mod
from vhpc.cluster.cluster import Cluster
from vhpc.cluster.events import Event
from vhpc.observe import NodeHandle, Observer, SlurmGauges
from vhpc.spec.model import NodeRole
from vhpc.spec.paths import ClusterPaths

DEFAULT_INTERVAL = 5.0


def node_handles(cluster: Cluster) -> list[NodeHandle]:
    """One handle per node of the spec: cgroup dir(s), host veth, log files."""
    spec, paths = cluster.spec, cluster.paths
    out = []
    for node in spec.nodes:
        dirs = cluster.runtime.cgroup_dirs(nodes_mod.cgroup_group(spec.name, node.name))
        # v1: <root>/<hierarchy>/vhpc-<cluster>/<node>, one per hierarchy; v2: one dir
        v1 = cluster.runtime.cgroup_version == 1
        cgroup: Path | dict[str, Path] = {d.parts[-3]: d for d in dirs} if v1 else dirs[0]
        logs: dict[str, Path | tuple[Path, ...]] = {
            d.spec.name: d.spec.log_file for d in cluster.supervisor.daemons(node.name)}
        if node.name == spec.controller.name:
            logs["slurmctld"] = paths.log / "slurmctld.log"
            logs.setdefault("munged", paths.log / "munged.log")
            # batch output Slurm writes into the shared home (sbatch's default place),
            # tagged with the controller that ran the job: service "job"
            logs["job"] = job_output_files(paths)
        if node.role is NodeRole.COMPUTE:  # slurmd's own log file, not its console
            logs["slurmd"] = paths.log / f"slurmd.{node.name}.log"
        out.append(NodeHandle(node.name, cgroup, spec.veth_of(node),
                              logs, node.role.value))
    return out


def job_output_files(paths: ClusterPaths, keep: int = 200) -> tuple[Path, ...]:
    """The newest `keep` slurm-<job>.out files in the cluster users' homes."""
    found: list[tuple[float, Path]] = []
    for path in paths.home.glob("*/slurm-*.out"):
        try:
            found.append((path.stat().st_mtime, path))
        except OSError:  # removed meanwhile
            continue
    return tuple(p for _, p in sorted(found)[-keep:])


def slurm_gauges(cluster: Cluster) -> SlurmGauges:
    """Node and job counts by state, from sinfo and squeue."""
    slurm = cluster.slurm_view.snapshot()  # refreshed here once per sampling interval
    nodes = Counter(s.rstrip("*~#$@+") for s in slurm.nodes.values())
    jobs = Counter(j.get("state", "").lower() for j in slurm.jobs)
    return SlurmGauges(dict(nodes), dict(jobs))


def sample_interval(cluster: Cluster) -> float:
    """spec.options["sample_interval"] (seconds), else 5."""
    text = cluster.spec.options.get("sample_interval", "")
    try:
        value = float(text) if text else DEFAULT_INTERVAL
    except ValueError:
        value = DEFAULT_INTERVAL
    return min(max(value, 0.2), 3600.0)


def make_observer(cluster: Cluster) -> Observer:
    """A started Observer of the cluster, subscribed to its events."""
    paths = cluster.paths
    options = cluster.spec.options
    state = paths.root / "observe"  # not paths.data: that one is shared into the nodes
    state.mkdir(parents=True, exist_ok=True)
    observer = Observer(state, cluster.spec.name, lambda: node_handles(cluster),
                        slurm_provider=lambda: slurm_gauges(cluster),
                        interval=sample_interval(cluster),
                        graphite=options.get("graphite") or None,
                        syslog=options.get("syslog") or None)

    def record(event: Event) -> None:
        observer.record_event(event.message, node=event.node, level=event.level,
                              ts=event.ts, kind=event.kind)

    for event in cluster.events.recent():
        record(event)
    cluster.events.subscribe(record)
    observer.start()
    return observer
