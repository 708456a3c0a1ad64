"""Embedded metrics store: raw node samples, 1-minute rollups and named gauges in SQLite.

Raw samples (kept ``Retention.raw_seconds``, default 1 h) carry the counters of
:class:`NodeSample` plus the rates derived from the previous sample of the same node
(CPU %, rx/tx bytes/s). Each completed minute is averaged into ``rollup_1m`` (kept
``Retention.rollup_seconds``, default 24 h). Slurm-level gauges are stored as named
series (``slurm.nodes.idle`` ...) with the same retention. Timestamps are epoch seconds;
``since`` arguments are absolute times, not ages.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from vhpc.observe.dbwriter import Database
from vhpc.observe.samples import NodeSample, Rates, rates

Metric = Literal["memory", "memory_limit", "cpu", "rx", "tx", "procs", "oom_kills"]
Point = tuple[float, float]

#: metric name -> column, the same in ``samples`` and ``rollup_1m``.
METRICS: dict[str, str] = {
    "memory": "mem_bytes",
    "memory_limit": "mem_limit",
    "cpu": "cpu_pct",
    "rx": "rx_bps",
    "tx": "tx_bps",
    "procs": "nprocs",
    "oom_kills": "oom_kills",
}

_COUNTERS = (
    "mem_bytes", "mem_limit", "mem_peak", "oom_kills", "failcnt", "cpu_ns", "nprocs",
    "rx_bytes", "tx_bytes", "rx_packets", "tx_packets",
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS samples (
  ts REAL NOT NULL, node TEXT NOT NULL,
  mem_bytes INTEGER, mem_limit INTEGER, mem_peak INTEGER, oom_kills INTEGER,
  failcnt INTEGER, cpu_ns INTEGER, nprocs INTEGER, rx_bytes INTEGER, tx_bytes INTEGER,
  rx_packets INTEGER, tx_packets INTEGER, cpu_pct REAL, rx_bps REAL, tx_bps REAL,
  PRIMARY KEY (node, ts)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS samples_ts ON samples(ts);
CREATE TABLE IF NOT EXISTS rollup_1m (
  ts INTEGER NOT NULL, node TEXT NOT NULL, n INTEGER, mem_bytes REAL, mem_max INTEGER,
  mem_limit INTEGER, cpu_pct REAL, rx_bps REAL, tx_bps REAL, oom_kills INTEGER,
  nprocs REAL, PRIMARY KEY (node, ts)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS rollup_1m_ts ON rollup_1m(ts);
CREATE TABLE IF NOT EXISTS gauges (
  ts REAL NOT NULL, name TEXT NOT NULL, value REAL, PRIMARY KEY (name, ts)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS gauges_ts ON gauges(ts);
CREATE TABLE IF NOT EXISTS gauges_1m (
  ts INTEGER NOT NULL, name TEXT NOT NULL, value REAL, PRIMARY KEY (name, ts)) WITHOUT ROWID;
"""

_ROLLUP_SQL = """
INSERT OR REPLACE INTO rollup_1m
SELECT CAST(ts / 60 AS INTEGER) * 60 AS m, node, count(*), avg(mem_bytes), max(mem_bytes),
       max(mem_limit), avg(cpu_pct), avg(rx_bps), avg(tx_bps), max(oom_kills), avg(nprocs)
FROM samples WHERE ts >= ? AND ts < ? GROUP BY m, node
"""
_GAUGE_ROLLUP_SQL = """
INSERT OR REPLACE INTO gauges_1m
SELECT CAST(ts / 60 AS INTEGER) * 60 AS m, name, avg(value)
FROM gauges WHERE ts >= ? AND ts < ? GROUP BY m, name
"""


@dataclass(frozen=True)
class Retention:
    """How long raw samples and 1-minute rollups are kept, in seconds."""

    raw_seconds: float = 3600.0
    rollup_seconds: float = 86400.0


@dataclass(frozen=True)
class ClusterTotals:
    """Sums over the latest sample of every node."""

    ts: float
    nodes: int
    mem_bytes: int
    mem_limit: int
    cpu_percent: float
    rx_bps: float
    tx_bps: float
    oom_kills: int
    nprocs: int


def _column(metric: str) -> str:
    try:
        return METRICS[metric]
    except KeyError:
        raise ValueError(f"unknown metric {metric!r}; one of {sorted(METRICS)}") from None


def _row_to_sample(row: sqlite3.Row) -> NodeSample:
    return NodeSample(row["node"], row["ts"], *(row[c] for c in _COUNTERS))


class MetricsStore:
    """Node samples and gauges in one SQLite file, written by one thread."""

    def __init__(self, path: Path, retention: Retention | None = None) -> None:
        self.retention = retention or Retention()
        self._db = Database(Path(path), SCHEMA, name="metrics")
        # Owned by the writer thread only:
        self._prev: dict[str, NodeSample] = {}
        self._rolled_until: float | None = None

    # -- writing -------------------------------------------------------------------
    def write(self, samples: Sequence[NodeSample]) -> None:
        """Queue samples for writing (returns at once; see :meth:`flush`)."""
        batch = list(samples)
        if batch:
            self._db.write(lambda conn: self._insert(conn, batch))

    def write_gauges(self, ts: float, values: Mapping[str, float]) -> None:
        """Queue one value per named gauge series at time ``ts``."""
        rows = [(ts, name, float(v)) for name, v in values.items()]
        if rows:
            self._db.write(lambda conn: self._insert_gauges(conn, ts, rows))

    def flush(self) -> None:
        """Wait until all queued writes are committed."""
        self._db.flush()

    def _insert(self, conn: sqlite3.Connection, batch: list[NodeSample]) -> None:
        rows = []
        for s in batch:
            prev = self._prev.get(s.node) or self._load_prev(conn, s.node)
            r: Rates | None = rates(prev, s)
            self._prev[s.node] = s
            rows.append((
                s.ts, s.node, s.mem_bytes, s.mem_limit, s.mem_peak, s.oom_kills, s.failcnt,
                s.cpu_ns, s.nprocs, s.rx_bytes, s.tx_bytes, s.rx_packets, s.tx_packets,
                r.cpu_percent if r else None, r.rx_bps if r else None, r.tx_bps if r else None,
            ))
        conn.executemany(
            f"INSERT OR REPLACE INTO samples VALUES ({','.join('?' * 16)})", rows
        )
        self._maintain(conn, max(s.ts for s in batch))

    def _insert_gauges(
        self, conn: sqlite3.Connection, ts: float, rows: list[tuple[float, str, float]]
    ) -> None:
        conn.executemany("INSERT OR REPLACE INTO gauges VALUES (?, ?, ?)", rows)
        self._maintain(conn, ts)

    def _load_prev(self, conn: sqlite3.Connection, node: str) -> NodeSample | None:
        row = conn.execute(
            "SELECT * FROM samples WHERE node = ? ORDER BY ts DESC LIMIT 1", (node,)
        ).fetchone()
        return None if row is None else _row_to_sample(row)

    def _maintain(self, conn: sqlite3.Connection, now: float) -> None:
        """Roll up completed minutes and drop data past retention (once a minute)."""
        minute = (int(now) // 60) * 60
        if self._rolled_until is None:
            done = conn.execute("SELECT max(ts) FROM rollup_1m").fetchone()[0]
            first = conn.execute("SELECT min(ts) FROM samples").fetchone()[0]
            start = done + 60 if done is not None else first if first is not None else now
            self._rolled_until = float((int(start) // 60) * 60)
        if minute <= self._rolled_until:
            return
        conn.execute(_ROLLUP_SQL, (self._rolled_until, minute))
        conn.execute(_GAUGE_ROLLUP_SQL, (self._rolled_until, minute))
        self._rolled_until = float(minute)
        raw_cut = now - self.retention.raw_seconds
        roll_cut = now - self.retention.rollup_seconds
        conn.execute("DELETE FROM samples WHERE ts < ?", (raw_cut,))
        conn.execute("DELETE FROM gauges WHERE ts < ?", (raw_cut,))
        conn.execute("DELETE FROM rollup_1m WHERE ts < ?", (roll_cut,))
        conn.execute("DELETE FROM gauges_1m WHERE ts < ?", (roll_cut,))
        live = {r[0] for r in conn.execute("SELECT DISTINCT node FROM samples")}
        for gone in set(self._prev) - live:
            del self._prev[gone]

    # -- reading -------------------------------------------------------------------
    def latest(self, since: float | None = None) -> dict[str, NodeSample]:
        """The newest sample of every node (only nodes sampled at or after ``since``)."""
        rows = self._db.query(
            "SELECT s.* FROM samples s JOIN (SELECT node, max(ts) AS ts FROM samples "
            "GROUP BY node) m ON s.node = m.node AND s.ts = m.ts WHERE s.ts >= ? "
            "ORDER BY s.node",
            (since if since is not None else float("-inf"),),
        )
        return {r["node"]: _row_to_sample(r) for r in rows}

    def latest_rates(self, since: float | None = None) -> dict[str, Rates]:
        """CPU % and network bytes/s of every node's newest sample that has them."""
        rows = self._db.query(
            "SELECT s.node, s.cpu_pct, s.rx_bps, s.tx_bps FROM samples s JOIN (SELECT node, "
            "max(ts) AS ts FROM samples GROUP BY node) m ON s.node = m.node AND s.ts = m.ts "
            "WHERE s.ts >= ? AND s.cpu_pct IS NOT NULL",
            (since if since is not None else float("-inf"),),
        )
        return {r["node"]: Rates(r["cpu_pct"], r["rx_bps"], r["tx_bps"]) for r in rows}

    def totals(self, since: float | None = None) -> ClusterTotals:
        """Cluster totals over the newest sample of every node."""
        latest = self.latest(since)
        rts = self.latest_rates(since)
        samples = list(latest.values())
        return ClusterTotals(
            ts=max((s.ts for s in samples), default=0.0),
            nodes=len(samples),
            mem_bytes=sum(s.mem_bytes for s in samples),
            mem_limit=sum(s.mem_limit or 0 for s in samples),
            cpu_percent=sum(r.cpu_percent for r in rts.values()),
            rx_bps=sum(r.rx_bps for r in rts.values()),
            tx_bps=sum(r.tx_bps for r in rts.values()),
            oom_kills=sum(s.oom_kills for s in samples),
            nprocs=sum(s.nprocs for s in samples),
        )

    def nodes(self) -> list[str]:
        """Names of every node with raw samples."""
        return [r[0] for r in self._db.query("SELECT DISTINCT node FROM samples ORDER BY node")]

    def series(
        self, node: str, metric: str, since: float, step: float | None = None
    ) -> list[Point]:
        """``[(ts, value)]`` of one node's metric since ``since``, averaged per ``step``."""
        return self.series_by_node(metric, since, step, nodes=[node]).get(node, [])

    def series_by_node(
        self,
        metric: str,
        since: float,
        step: float | None = None,
        nodes: Iterable[str] | None = None,
    ) -> dict[str, list[Point]]:
        """Series of ``metric`` for every node (or only ``nodes``) in one query."""
        col = _column(metric)
        wanted = None if nodes is None else list(nodes)
        node_sql = "" if wanted is None else f" AND node IN ({','.join('?' * len(wanted))})"
        params: list[object] = []
        raw_start = self._raw_start()
        pts = (
            f"SELECT ts, node, {col} AS v FROM rollup_1m WHERE ts >= ? AND ts < ?{node_sql} "
            f"UNION ALL SELECT ts, node, {col} FROM samples WHERE ts >= ?{node_sql}"
        )
        params += [since, raw_start, *(wanted or []), since, *(wanted or [])]
        if step:
            sql = (
                f"SELECT node, CAST(ts / ? AS INTEGER) * ? AS t, avg(v) FROM ({pts}) "
                "WHERE v IS NOT NULL GROUP BY node, t ORDER BY node, t"
            )
            params = [step, step, *params]
        else:
            sql = f"SELECT node, ts, v FROM ({pts}) WHERE v IS NOT NULL ORDER BY node, ts"
        out: dict[str, list[Point]] = {}
        for node, t, v in self._db.query(sql, tuple(params)):
            out.setdefault(node, []).append((float(t), float(v)))
        return out

    def cluster_series(self, metric: str, since: float, step: float) -> list[Point]:
        """Sum over nodes of ``metric`` (per-node average per ``step`` bucket)."""
        totals: dict[float, float] = {}
        for points in self.series_by_node(metric, since, step).values():
            for t, v in points:
                totals[t] = totals.get(t, 0.0) + v
        return sorted(totals.items())

    def _raw_start(self) -> float:
        first = self._db.query("SELECT min(ts) FROM samples")[0][0]
        return float("inf") if first is None else float(first)

    def latest_gauges(self) -> dict[str, float]:
        """Every gauge written at the most recent gauge timestamp."""
        rows = self._db.query(
            "SELECT name, value FROM gauges WHERE ts = (SELECT max(ts) FROM gauges)"
        )
        return {r[0]: r[1] for r in rows}

    def gauge_series(self, name: str, since: float, step: float | None = None) -> list[Point]:
        """``[(ts, value)]`` of one named gauge series."""
        first = self._db.query("SELECT min(ts) FROM gauges")[0][0]
        raw_start = float("inf") if first is None else float(first)
        pts = (
            "SELECT ts, value AS v FROM gauges_1m WHERE name = ? AND ts >= ? AND ts < ? "
            "UNION ALL SELECT ts, value FROM gauges WHERE name = ? AND ts >= ?"
        )
        params: tuple[object, ...] = (name, since, raw_start, name, since)
        if step:
            sql = (f"SELECT CAST(ts / ? AS INTEGER) * ? AS t, avg(v) FROM ({pts}) "
                   "GROUP BY t ORDER BY t")
            params = (step, step, *params)
        else:
            sql = f"SELECT ts, v FROM ({pts}) ORDER BY ts"
        return [(float(t), float(v)) for t, v in self._db.query(sql, params)]

    def close(self) -> None:
        """Commit queued writes and close the database."""
        self._db.close()
