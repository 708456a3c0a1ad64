"""The JSON payloads of the dashboard's observe endpoints, built from the stores.

The manager's routes call these so the shapes match ``web/static/app.js`` exactly:
``/api/v1/metrics``, ``/api/v1/logs``, ``/api/v1/events``. ``since`` is always an age
in seconds (``since=600``: the last ten minutes).
"""

from __future__ import annotations

import math
from typing import Any

from vhpc.observe.log_store import LogStore
from vhpc.observe.metrics_store import METRICS, MetricsStore

TOTAL = "_total"  # node name of the cluster-total series (not a valid hostname)
MAX_POINTS = 240
DASHBOARD_METRICS = ("memory", "cpu", "rx", "tx")
#: Cluster-level series made of the Slurm gauges (GET /api/v1/metrics?metric=queue).
SLURM_METRICS = ("queue", "utilisation")


def pick_step(since: float, interval: float, max_points: int = MAX_POINTS) -> float:
    """A bucket size giving at most ``max_points`` points, a multiple of ``interval``."""
    if since <= 0:
        return interval
    buckets = math.ceil(since / max_points / interval)
    return float(max(1, buckets) * interval)


def metrics_payload(
    store: MetricsStore,
    metric: str,
    since: float,
    now: float,
    interval: float,
    node: str | None = None,
) -> dict[str, Any]:
    """``{"series": [{"node","metric","points":[[ts,v],...]}]}``.

    ``node`` names one node, or ``_total`` for the cluster sum; None gives every node
    plus ``_total``. ``metric`` is one of memory (bytes), cpu (% of one core), rx/tx
    (bytes/s), procs, memory_limit, oom_kills.
    """
    if metric in SLURM_METRICS:
        return {"series": slurm_series(store, metric, now - since,
                                       pick_step(since, interval))}
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}")
    step = pick_step(since, interval)
    start = now - since
    series = []
    if node in (None, TOTAL):
        total = store.cluster_series(metric, start, step)
        series.append({"node": TOTAL, "metric": metric, "points": _pts(total)})
    if node is None:
        for name, points in sorted(store.series_by_node(metric, start, step).items()):
            series.append({"node": name, "metric": metric, "points": _pts(points)})
    elif node != TOTAL:
        points = store.series(node, metric, start, step)
        series.append({"node": node, "metric": metric, "points": _pts(points)})
    return {"series": series}


def slurm_series(store: MetricsStore, metric: str, start: float,
                 step: float) -> list[dict[str, Any]]:
    """The cluster-level Slurm series: ``queue`` (pending and running jobs) or
    ``utilisation`` (allocated CPUs / total, in %), from the sampler's gauges."""
    if metric == "queue":
        return [{"node": state, "metric": metric,
                 "points": _pts(store.gauge_series(f"slurm.jobs.{state}", start, step))}
                for state in ("pending", "running")]
    allocated = dict(store.gauge_series("slurm.cpus.allocated", start, step))
    total = store.gauge_series("slurm.cpus.total", start, step)
    points = [(t, 100.0 * allocated[t] / n) for t, n in total if n > 0 and t in allocated]
    return [{"node": "allocated", "metric": metric, "points": _pts(points)}]


def _pts(points: list[tuple[float, float]]) -> list[list[float]]:
    return [[t, round(v, 3)] for t, v in points]


def logs_payload(
    store: LogStore,
    now: float,
    q: str | None = None,
    node: str | None = None,
    service: str | None = None,
    level: str | None = None,
    since: float | None = None,
    limit: int = 200,
) -> dict[str, Any]:
    """``{"logs": [{"id","ts","node","service","level","message"}]}``, newest first."""
    rows = store.search(
        q=q or None, node=node or None, service=service or None, level=level or None,
        since=None if not since else now - since, limit=limit,
    )
    return {"logs": [r.to_dict() for r in rows]}


def events_payload(
    store: LogStore, now: float, since: float | None = None, limit: int = 200
) -> dict[str, Any]:
    """``{"events": [...same shape as logs...]}``, newest first."""
    rows = store.events(since=None if not since else now - since, limit=limit)
    return {"events": [r.to_dict() for r in rows]}
