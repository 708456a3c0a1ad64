"""The Observer: runs the collectors of one cluster inside the manager process.

Two daemon threads: the sampler (every ``interval`` s: sample every node, derive rates,
store, push to Graphite, record OOM-kill events, read Slurm gauges) and the log
collector (every ``log_interval`` s: tail every node's log files into the log store and
forward to syslog). The node list is asked of ``nodes_provider`` once per sampling
round, from the sampler thread only.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from vhpc.observe.exporters import Snapshot, render_prometheus
from vhpc.observe.graphite import GraphiteClient
from vhpc.observe.log_store import FileOffset, LogRecord, LogRow, LogStore
from vhpc.observe.metrics_store import MetricsStore, Retention
from vhpc.observe.netstats import SYS_CLASS_NET
from vhpc.observe.sampler import sample_node
from vhpc.observe.samples import NodeHandle, NodeSample, Rates, SlurmGauges, rates
from vhpc.observe.syslog_forward import SyslogForwarder
from vhpc.observe.tailer import LogSource, Tailer
from vhpc.observe.views import events_payload, logs_payload, metrics_payload
from vhpc.spec.sizes import format_size

log = logging.getLogger(__name__)


class _Fanout:
    """Tailer sink: the log store, then the syslog forwarder."""

    def __init__(self, store: LogStore, syslog: SyslogForwarder | None) -> None:
        self.store, self.syslog, self.lines = store, syslog, 0

    def ingest(
        self, records: Sequence[LogRecord], offsets: Mapping[str, FileOffset] | None = None
    ) -> object:
        self.lines += len(records)
        fut = self.store.ingest(records, offsets)
        if self.syslog is not None and records:
            self.syslog.forward(records)
        return fut


class Observer:
    """Metrics, logs and events of one cluster; see the package docstring for use."""

    def __init__(
        self,
        state_dir: Path,
        cluster: str,
        nodes_provider: Callable[[], Sequence[NodeHandle]],
        *,
        slurm_provider: Callable[[], SlurmGauges] | None = None,
        interval: float = 5.0,
        log_interval: float = 1.0,
        graphite: str | None = None,
        syslog: str | None = None,
        retention: Retention | None = None,
        net_root: Path = SYS_CLASS_NET,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cluster = cluster
        self.interval = interval
        self.log_interval = log_interval
        self._nodes_provider = nodes_provider
        self._slurm_provider = slurm_provider
        self._net_root = net_root
        self._clock = clock
        state = Path(state_dir)
        self.metrics_store = MetricsStore(state / "metrics.sqlite", retention)
        self.log_store = LogStore(state / "logs.sqlite")
        self.graphite = GraphiteClient(graphite, cluster) if graphite else None
        self.syslog = SyslogForwarder(syslog, cluster) if syslog else None
        self._fanout = _Fanout(self.log_store, self.syslog)
        self._tailer = Tailer(self._fanout, self.log_store.offsets(), clock=clock)
        self._lock = threading.Lock()  # guards the fields below
        self._latest: dict[str, NodeSample] = self.metrics_store.latest()
        self._rates: dict[str, Rates] = {}
        self._slurm: SlurmGauges | None = None
        self._files: dict[Path, LogSource] | None = None
        self._counters = {"samples": 0.0, "sample_errors": 0.0, "slurm_errors": 0.0}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        """Start the sampler and log threads (a first sample is taken at once)."""
        if self._threads:
            return
        self._stop.clear()
        for name, fn, every in (
            ("vhpc-observe-metrics", self.tick, self.interval),
            ("vhpc-observe-logs", self.poll_logs, self.log_interval),
        ):
            t = threading.Thread(target=self._loop, args=(fn, every), name=name, daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        """Stop the threads, flush and close stores and forwarders."""
        self._stop.set()
        for t in self._threads:
            t.join(timeout=max(10.0, self.interval * 2))
        self._threads.clear()
        self._tailer.close()
        for closer in (self.graphite, self.syslog):
            if closer is not None:
                closer.close()
        self.metrics_store.close()
        self.log_store.close()

    def _loop(self, fn: Callable[[], object], every: float) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            try:
                fn()
            except Exception:  # a collector bug must not end the thread
                log.exception("%s failed", threading.current_thread().name)
            next_at += every
            delay = next_at - time.monotonic()
            if delay < 0:  # fell behind: skip the missed rounds
                next_at, delay = time.monotonic(), 0.0
            self._stop.wait(delay)

    # -- one round of each collector --------------------------------------------------
    def tick(self) -> list[NodeSample]:
        """Sample every node once: store, push, record OOM events. Returns the samples.

        Called by the sampler thread; call it directly only when not :meth:`start`-ed.
        """
        nodes = list(self._nodes_provider())
        self._set_files(nodes)
        now = self._clock()
        samples: list[NodeSample] = []
        for node in nodes:
            if self._stop.is_set():  # stopping (down): a 1024-node round held it ~2 s
                return samples
            try:
                samples.append(sample_node(node, now, self._net_root))
            except Exception:
                self._counters["sample_errors"] += 1
                log.exception("sampling node %s", node.name)
        if self._stop.is_set():
            return samples
        slurm = self._read_slurm()
        with self._lock:
            prev = self._latest
            new_rates = {s.node: r for s in samples if (r := rates(prev.get(s.node), s))}
            self._latest = {s.node: s for s in samples}
            self._rates = new_rates
            if slurm is not None:
                self._slurm = slurm
        self._oom_events(prev, samples)
        self.metrics_store.write(samples)
        gauges = slurm.as_series() if slurm is not None else None
        if gauges:
            self.metrics_store.write_gauges(now, gauges)
        if self.graphite is not None:
            self.graphite.push(samples, new_rates, gauges, now)
        self._counters["samples"] += len(samples)
        return samples

    def poll_logs(self) -> int:
        """Tail every known log file once; returns the number of new lines.

        Called by the log thread; call it directly only when not :meth:`start`-ed.
        """
        with self._lock:
            files = self._files
            self._files = None
        if files is not None:
            self._tailer.set_files(files)
        return self._tailer.poll()

    def _set_files(self, nodes: Sequence[NodeHandle]) -> None:
        files = {
            Path(path): LogSource(n.name, service)
            for n in nodes for service, paths in n.log_files.items()
            for path in (paths if isinstance(paths, tuple) else (paths,))
        }
        with self._lock:
            self._files = files

    def _read_slurm(self) -> SlurmGauges | None:
        if self._slurm_provider is None:
            return None
        try:
            return self._slurm_provider()
        except Exception as exc:
            self._counters["slurm_errors"] += 1
            log.warning("reading Slurm gauges failed: %s", exc)
            return None

    def _oom_events(self, prev: Mapping[str, NodeSample], samples: Sequence[NodeSample]) -> None:
        for s in samples:
            before = prev.get(s.node)
            if before is not None and s.oom_kills > before.oom_kills:
                n = s.oom_kills - before.oom_kills
                self.record_event(
                    f"OOM killer killed {n} process{'es' if n > 1 else ''} in node {s.node} "
                    f"(memory limit {format_size(s.mem_limit) if s.mem_limit else 'none'}, "
                    f"{s.oom_kills} in total)",
                    node=s.node, level="error", ts=s.ts, kind="oom_kill",
                )

    # -- what the manager and the API read ----------------------------------------------
    def record_event(
        self, message: str, node: str = "", level: str = "info", ts: float | None = None,
        kind: str = "event",
    ) -> None:
        """Store (and forward) one vhpc event: node added/removed, daemon restarted..."""
        record = LogRecord(self._clock() if ts is None else ts, node, "vhpc", level, message,
                           kind)
        self._fanout.ingest([record])

    def latest(self) -> dict[str, NodeSample]:
        """The last sample of every node seen in the last round."""
        with self._lock:
            return dict(self._latest)

    def rates(self) -> dict[str, Rates]:
        """CPU % and network bytes/s of every node over the last round."""
        with self._lock:
            return dict(self._rates)

    def node_metrics(self) -> dict[str, dict[str, Any]]:
        """Per node: memory_usage, memory_limit, oom_kills, cpu_percent, rx_bps, tx_bps,
        nprocs; ready to merge into the ``/api/v1/status`` node objects."""
        with self._lock:
            latest, rts = dict(self._latest), dict(self._rates)
        out = {}
        for name, s in latest.items():
            r = rts.get(name)
            out[name] = {
                "memory_usage": s.mem_bytes, "memory_limit": s.mem_limit,
                "oom_kills": s.oom_kills, "nprocs": s.nprocs,
                "cpu_percent": None if r is None else round(r.cpu_percent, 1),
                "rx_bps": None if r is None else round(r.rx_bps),
                "tx_bps": None if r is None else round(r.tx_bps),
            }
        return out

    def snapshot(self) -> Snapshot:
        """What a Prometheus scrape shows now."""
        with self._lock:
            latest, slurm = dict(self._latest), self._slurm
        counters = dict(self._counters, log_lines=float(self._fanout.lines))
        for fwd in (self.graphite, self.syslog):
            if fwd is not None:
                counters[f"{fwd.sender.name}_dropped"] = float(fwd.sender.stats.dropped)
                counters[f"{fwd.sender.name}_sent"] = float(fwd.sender.stats.sent)
        return Snapshot(latest, slurm, counters)

    def prometheus_text(self) -> bytes:
        """The ``/metrics`` body (content type ``vhpc.observe.CONTENT_TYPE``)."""
        return render_prometheus(self.cluster, self.snapshot)

    def metrics_json(
        self, metric: str, since: float = 600.0, node: str | None = None
    ) -> dict[str, Any]:
        """Body of ``GET /api/v1/metrics`` (``since`` = age in seconds)."""
        return metrics_payload(
            self.metrics_store, metric, since, self._clock(), self.interval, node
        )

    def logs_json(
        self,
        q: str | None = None,
        node: str | None = None,
        service: str | None = None,
        level: str | None = None,
        since: float | None = None,
        limit: int = 200,
    ) -> dict[str, Any]:
        """Body of ``GET /api/v1/logs`` (``since`` = age in seconds)."""
        return logs_payload(self.log_store, self._clock(), q, node, service, level, since, limit)

    def wait_logs(self, after_id: int, timeout: float = 1.0, limit: int = 500) -> list[LogRow]:
        """Rows with id > ``after_id``, waiting up to ``timeout`` s for one (SSE "log")."""
        self.log_store.wait(after_id, timeout)
        return self.log_store.follow(after_id, limit)

    def events_json(self, since: float | None = None, limit: int = 200) -> dict[str, Any]:
        """Body of ``GET /api/v1/events`` (``since`` = age in seconds)."""
        return events_payload(self.log_store, self._clock(), since, limit)
