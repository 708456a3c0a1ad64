"""Glue between a live Cluster and vhpc.observe: node handles, Slurm gauges, events.

The manager builds one Observer per cluster with :func:`make_observer` after boot or
adopt; the ClusterAPI stops it before teardown removes the state directory.
"""

from __future__ import annotations

import re
import threading
from collections import Counter, OrderedDict
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from vhpc.cluster import node as nodes_mod
from vhpc.cluster.cluster import Cluster
from vhpc.cluster.events import Event
from vhpc.observe import NodeHandle, Observer, SlurmGauges
from vhpc.runtime.hostops import CommandResult
from vhpc.spec.model import NodeRole
from vhpc.spec.paths import ClusterPaths

DEFAULT_INTERVAL = 5.0


def node_handles(cluster: Cluster, job_hosts: JobHosts | None = None) -> list[NodeHandle]:
    """One handle per node of the spec: cgroup dir(s), host veth, log files.

    Batch output files (service "job") go to the node that ran the job's batch script,
    as `job_hosts` learns it from Slurm; without `job_hosts` they are not followed.
    """
    spec, paths = cluster.spec, cluster.paths
    job_files = (job_hosts.files_by_host(job_output_files(paths), cluster.slurm_view.client)
                 if job_hosts is not None else {})
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
        if node.role is NodeRole.COMPUTE:  # slurmd's own log file, not its console
            logs["slurmd"] = paths.log / f"slurmd.{node.name}.log"
        if node.name in job_files:  # sbatch's slurm-<job>.out in the shared home
            logs["job"] = tuple(job_files[node.name])
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


class SlurmRunner(Protocol):
    """What JobHosts needs of a SlurmClient: run one client command."""

    def run(self, argv: list[str], check: bool = True, timeout: float = 30.0) -> CommandResult:
        """Run a Slurm client command on the host."""


JOB_FILE = re.compile(r"slurm-(\d+(?:_\d+)?)\.out")


class JobHosts:
    """Which node ran each job's batch script (squeue's %B), learned once per job.

    Unknown ids are asked of Slurm in one `squeue -t all` per sampling interval; a job
    Slurm no longer knows (ended over MinJobAge ago) has no host, and its file is not
    followed rather than credited to the wrong node.
    """

    def __init__(self, keep: int = 4096) -> None:
        self._hosts: OrderedDict[str, str] = OrderedDict()  # job id -> host ("" unknown)
        self._keep = keep
        self._lock = threading.Lock()

    def files_by_host(self, files: Iterable[Path], client: SlurmRunner) -> dict[str, list[Path]]:
        """Node name -> its jobs' output files, for the files whose host is known."""
        ids = {path: m.group(1) for path in files if (m := JOB_FILE.fullmatch(path.name))}
        with self._lock:
            unknown = sorted({i for i in ids.values() if i not in self._hosts})
            if unknown:
                self._learn(unknown, client)
            out: dict[str, list[Path]] = {}
            for path, job in ids.items():
                host = self._hosts.get(job, "")
                if host:
                    out.setdefault(host, []).append(path)
            return out

    def _learn(self, ids: list[str], client: SlurmRunner) -> None:
        result = client.run(["squeue", "-h", "-t", "all", "-j", ",".join(ids),
                             "-o", "%i %B"], check=False, timeout=15)
        learned = dict(line.split(None, 1) for line in result.stdout.splitlines()
                       if len(line.split(None, 1)) == 2)
        # squeue filters ids it does not know, but fails when it knows none of them
        answered = result.returncode == 0 or "Invalid job id" in result.stderr
        for job in ids:
            host = learned.get(job, "").strip()
            if host and host != "n/a":  # n/a: still pending, ask again next time
                self._hosts[job] = host
            elif answered and job not in learned:
                self._hosts[job] = ""
        while len(self._hosts) > self._keep:
            self._hosts.popitem(last=False)


def slurm_gauges(cluster: Cluster) -> SlurmGauges:
    """Node and job counts by state, from sinfo and squeue."""
    slurm = cluster.slurm_view.snapshot()  # refreshed here once per sampling interval
    nodes = Counter(s.rstrip("*~#$@+") for s in slurm.nodes.values())
    jobs = Counter(j.get("state", "").lower() for j in slurm.jobs)
    queue = {"pending": 0, "running": 0, **jobs}  # an empty queue charts as 0, not a gap
    return SlurmGauges(dict(nodes), queue, cpus=slurm.cpus)


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
    job_hosts = JobHosts()
    observer = Observer(state, cluster.spec.name,
                        lambda: node_handles(cluster, job_hosts),
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
