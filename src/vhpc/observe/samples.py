"""Typed records the collectors produce: one node's sample, node handles, Slurm gauges.

Everything here is pure data plus arithmetic on it (CPU % and rates between two
samples); nothing reads the kernel.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

#: A node's cgroup: a cgroup v2 directory, or cgroup v1 ``{controller: directory}``
#: (keys ``memory``, ``cpuacct`` (or ``cpu,cpuacct``/``cpu``), optionally ``pids``).
CgroupRef = Path | Mapping[str, Path]


@dataclass(frozen=True)
class NodeHandle:
    """What the observer needs to know about one node; given by the manager."""

    name: str
    cgroup: CgroupRef | None = None
    veth: str | None = None
    #: service name -> log file(s); every line of them is tagged (node=name, service).
    log_files: Mapping[str, Path | tuple[Path, ...]] = field(default_factory=dict)
    role: str = "compute"


@dataclass(frozen=True)
class NodeSample:
    """One node's counters at time ``ts`` (epoch seconds), seen from inside the node.

    Network counters are the node's view: ``rx`` is what the node received (the
    host-side veth's tx). ``None`` means "not available" (e.g. no limit, no failcnt on v2).
    """

    node: str
    ts: float
    mem_bytes: int
    mem_limit: int | None
    mem_peak: int | None
    oom_kills: int
    failcnt: int | None
    cpu_ns: int
    nprocs: int
    rx_bytes: int
    tx_bytes: int
    rx_packets: int
    tx_packets: int


@dataclass(frozen=True)
class Rates:
    """Per-second rates between two samples of one node."""

    cpu_percent: float
    rx_bps: float
    tx_bps: float


def _rate(prev: int, cur: int, dt: float) -> float:
    """Counter delta per second; a counter that went backwards (reset) counts from 0."""
    delta = cur - prev if cur >= prev else cur
    return delta / dt


def cpu_percent(prev: NodeSample, cur: NodeSample) -> float | None:
    """CPU use between two samples in percent of one core (can exceed 100 on >1 CPU)."""
    dt = cur.ts - prev.ts
    if dt <= 0:
        return None
    return _rate(prev.cpu_ns, cur.cpu_ns, dt) / 1e9 * 100.0


def rates(prev: NodeSample | None, cur: NodeSample) -> Rates | None:
    """CPU % and network bytes/s between two samples of the same node, or None."""
    if prev is None or prev.node != cur.node:
        return None
    dt = cur.ts - prev.ts
    if dt <= 0:
        return None
    return Rates(
        cpu_percent=_rate(prev.cpu_ns, cur.cpu_ns, dt) / 1e9 * 100.0,
        rx_bps=_rate(prev.rx_bytes, cur.rx_bytes, dt),
        tx_bps=_rate(prev.tx_bytes, cur.tx_bytes, dt),
    )


@dataclass(frozen=True)
class SlurmGauges:
    """Slurm-level state, as the manager reads it from sinfo/squeue/sacct."""

    nodes_by_state: Mapping[str, int] = field(default_factory=dict)
    jobs_by_state: Mapping[str, int] = field(default_factory=dict)
    completed_total: int = 0
    #: CPUs by use (allocated, idle, other, total: sinfo's %C); {} = not read
    cpus: Mapping[str, int] = field(default_factory=dict)

    def as_series(self) -> dict[str, float]:
        """Flatten to named series: ``slurm.nodes.<state>``, ``slurm.jobs.<state>``, ..."""
        out: dict[str, float] = {}
        for state, n in self.nodes_by_state.items():
            out[f"slurm.nodes.{state.lower()}"] = float(n)
        for state, n in self.jobs_by_state.items():
            out[f"slurm.jobs.{state.lower()}"] = float(n)
        out["slurm.jobs_completed"] = float(self.completed_total)
        for use, n in self.cpus.items():
            out[f"slurm.cpus.{use}"] = float(n)
        return out

    @classmethod
    def from_series(cls, series: Mapping[str, float]) -> SlurmGauges:
        """Inverse of :meth:`as_series` (used to read gauges back from the store)."""
        nodes: dict[str, int] = {}
        jobs: dict[str, int] = {}
        completed = 0
        cpus: dict[str, int] = {}
        for name, value in series.items():
            if name.startswith("slurm.nodes."):
                nodes[name.removeprefix("slurm.nodes.")] = int(value)
            elif name.startswith("slurm.jobs."):
                jobs[name.removeprefix("slurm.jobs.")] = int(value)
            elif name == "slurm.jobs_completed":
                completed = int(value)
            elif name.startswith("slurm.cpus."):
                cpus[name.removeprefix("slurm.cpus.")] = int(value)
        return cls(nodes, jobs, completed, cpus)
