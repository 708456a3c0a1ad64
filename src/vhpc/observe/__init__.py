"""Observability of a cluster: metrics sampler, central logs, events, exporters.

What the manager calls (everything else in this package is internal)::

    from vhpc.observe import NodeHandle, Observer, SlurmGauges, CONTENT_TYPE

    def nodes() -> list[NodeHandle]:          # called once per sampling round
        return [NodeHandle(
            name="compute1", role="compute",
            cgroup={"memory": Path("/sys/fs/cgroup/memory/vhpc/c/compute1"),
                    "cpuacct": Path("/sys/fs/cgroup/cpuacct/vhpc/c/compute1")},
            # cgroup v2: cgroup=Path("/sys/fs/cgroup/vhpc/c/compute1")
            veth="vh-c-compute1",                 # host-side veth name
            log_files={"slurmd": state / "log/slurmd.compute1.log"},
        )]

    def slurm() -> SlurmGauges:               # optional; from sinfo/squeue
        return SlurmGauges({"idle": 3, "alloc": 1}, {"running": 1, "pending": 2}, 17)

    obs = Observer(state_dir, "vhpc", nodes, slurm_provider=slurm, interval=5.0,
                   graphite=None or "127.0.0.1:2003", syslog=None or "host:514")
    obs.start()
    obs.record_event("added compute5", node="compute5", kind="node_added")  # level=...
    obs.prometheus_text()                      # GET /metrics, media type CONTENT_TYPE
    obs.node_metrics()                         # merge into /api/v1/status nodes
    obs.metrics_json("memory", since=600, node=None)             # GET /api/v1/metrics
    obs.logs_json(q, node, service, level, since, limit)         # GET /api/v1/logs
    obs.events_json(since)                                       # GET /api/v1/events
    obs.log_store.last_id(); obs.log_store.wait(after_id, 1.0)   # SSE "log" events:
    obs.log_store.follow(after_id)                               #   rows after an id
    obs.stop()

``obs.metrics_store`` (:class:`MetricsStore`) and ``obs.log_store`` (:class:`LogStore`)
are the embedded SQLite stores (``<state_dir>/metrics.sqlite``, ``logs.sqlite``);
``since`` arguments of the stores are absolute epoch seconds, those of the ``*_json``
helpers are ages in seconds, as in the HTTP API.
"""

from vhpc.observe.exporters import CONTENT_TYPE, Snapshot, render_prometheus
from vhpc.observe.log_store import LogRecord, LogRow, LogStore
from vhpc.observe.metrics_store import ClusterTotals, MetricsStore, Retention
from vhpc.observe.observer import Observer
from vhpc.observe.sampler import sample_node
from vhpc.observe.samples import NodeHandle, NodeSample, Rates, SlurmGauges, cpu_percent

__all__ = [
    "CONTENT_TYPE",
    "ClusterTotals",
    "LogRecord",
    "LogRow",
    "LogStore",
    "MetricsStore",
    "NodeHandle",
    "NodeSample",
    "Observer",
    "Rates",
    "Retention",
    "SlurmGauges",
    "Snapshot",
    "cpu_percent",
    "render_prometheus",
    "sample_node",
]
