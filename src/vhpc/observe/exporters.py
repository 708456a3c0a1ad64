"""Prometheus exposition of the latest node samples and Slurm gauges.

A custom collector (no global registry, nothing kept between scrapes) renders what the
observer last sampled; serve :func:`render_prometheus` as ``/metrics`` with content type
:data:`CONTENT_TYPE`. Every node metric has labels ``cluster`` and ``node``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from vhpc.observe.samples import NodeSample, SlurmGauges

CONTENT_TYPE = CONTENT_TYPE_LATEST

_GAUGES: tuple[tuple[str, str, Callable[[NodeSample], float | None]], ...] = (
    ("vhpc_node_memory_bytes", "Memory charged to the node's cgroup.", lambda s: s.mem_bytes),
    ("vhpc_node_memory_limit_bytes", "Memory limit of the node's cgroup.",
     lambda s: s.mem_limit),
    ("vhpc_node_memory_peak_bytes", "Highest memory use of the node's cgroup.",
     lambda s: s.mem_peak),
    ("vhpc_node_processes", "Processes in the node's cgroup.", lambda s: s.nprocs),
    ("vhpc_node_last_sample_timestamp_seconds", "When the node was last sampled.",
     lambda s: s.ts),
)
_COUNTERS: tuple[tuple[str, str, Callable[[NodeSample], float | None]], ...] = (
    ("vhpc_node_oom_kills", "Processes killed by the OOM killer in the node.",
     lambda s: s.oom_kills),
    ("vhpc_node_memory_failcnt", "Times the node hit its memory limit (cgroup v1).",
     lambda s: s.failcnt),
    ("vhpc_node_cpu_seconds", "CPU time used by the node's processes.",
     lambda s: s.cpu_ns / 1e9),
    ("vhpc_node_network_receive_bytes", "Bytes received by the node.", lambda s: s.rx_bytes),
    ("vhpc_node_network_transmit_bytes", "Bytes sent by the node.", lambda s: s.tx_bytes),
    ("vhpc_node_network_receive_packets", "Packets received by the node.",
     lambda s: s.rx_packets),
    ("vhpc_node_network_transmit_packets", "Packets sent by the node.",
     lambda s: s.tx_packets),
)


@dataclass(frozen=True)
class Snapshot:
    """What one scrape shows: latest samples, Slurm gauges, observer self-counters."""

    samples: Mapping[str, NodeSample] = field(default_factory=dict)
    slurm: SlurmGauges | None = None
    #: name -> value, exported as ``vhpc_observe_<name>_total`` counters
    self_counters: Mapping[str, float] = field(default_factory=dict)


class VhpcCollector(Collector):
    """Yields vhpc's metric families from a snapshot provider at scrape time."""

    def __init__(self, cluster: str, snapshot: Callable[[], Snapshot]) -> None:
        self.cluster = cluster
        self.snapshot = snapshot

    def describe(self) -> list[Metric]:
        """Nothing to pre-describe: families depend on the scrape."""
        return []

    def collect(self) -> Iterator[Metric]:
        """Build every family from the current snapshot."""
        snap = self.snapshot()
        samples = [snap.samples[n] for n in sorted(snap.samples)]
        labels = ["cluster", "node"]
        for name, doc, get in _GAUGES:
            gauge = GaugeMetricFamily(name, doc, labels=labels)
            for s in samples:
                value = get(s)
                if value is not None:
                    gauge.add_metric([self.cluster, s.node], value)
            yield gauge
        for name, doc, get in _COUNTERS:
            counter = CounterMetricFamily(name, doc, labels=labels)
            for s in samples:
                value = get(s)
                if value is not None:
                    counter.add_metric([self.cluster, s.node], value)
            yield counter
        if snap.slurm is not None:
            yield from self._slurm(snap.slurm)
        for key, value in sorted(snap.self_counters.items()):
            c = CounterMetricFamily(f"vhpc_observe_{key}", f"Observer counter {key}.",
                                    labels=["cluster"])
            c.add_metric([self.cluster], value)
            yield c

    def _slurm(self, g: SlurmGauges) -> Iterator[Metric]:
        nodes = GaugeMetricFamily("vhpc_slurm_nodes", "Slurm nodes by state.",
                                  labels=["cluster", "state"])
        for state, n in sorted(g.nodes_by_state.items()):
            nodes.add_metric([self.cluster, state.lower()], n)
        yield nodes
        jobs = GaugeMetricFamily("vhpc_slurm_jobs", "Slurm jobs by state.",
                                 labels=["cluster", "state"])
        for state, n in sorted(g.jobs_by_state.items()):
            jobs.add_metric([self.cluster, state.lower()], n)
        yield jobs
        done = CounterMetricFamily("vhpc_slurm_jobs_completed", "Slurm jobs completed.",
                                   labels=["cluster"])
        done.add_metric([self.cluster], g.completed_total)
        yield done


def render_prometheus(cluster: str, snapshot: Callable[[], Snapshot]) -> bytes:
    """Prometheus text format (0.0.4) of one snapshot."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(VhpcCollector(cluster, snapshot))
    return generate_latest(registry)
