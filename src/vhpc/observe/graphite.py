"""Push node samples and Slurm gauges to Graphite's carbon (plaintext protocol).

One line per value, ``<path> <value> <timestamp>\\n`` over TCP (carbon's line
receiver, port 2003 by default), paths ``vhpc.<cluster>.<node>.memory.usage`` etc.,
like diamond did for the seed's Graphite. Sending is asynchronous (:mod:`tcpsink`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from vhpc.observe.samples import NodeSample, Rates
from vhpc.observe.tcpsink import TcpSender, parse_hostport

DEFAULT_PORT = 2003
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def component(name: str) -> str:
    """Make one path component safe for Graphite (no dots, spaces or specials)."""
    return _UNSAFE.sub("_", name) or "_"


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.6g}"


def sample_values(s: NodeSample, r: Rates | None) -> dict[str, float]:
    """The values sent for one node sample, by path suffix below the node."""
    out: dict[str, float] = {
        "memory.usage": s.mem_bytes,
        "memory.oom_kills": s.oom_kills,
        "cpu.seconds": s.cpu_ns / 1e9,
        "processes": s.nprocs,
        "network.rx_bytes": s.rx_bytes,
        "network.tx_bytes": s.tx_bytes,
        "network.rx_packets": s.rx_packets,
        "network.tx_packets": s.tx_packets,
    }
    if s.mem_limit is not None:
        out["memory.limit"] = s.mem_limit
    if s.mem_peak is not None:
        out["memory.peak"] = s.mem_peak
    if s.failcnt is not None:
        out["memory.failcnt"] = s.failcnt
    if r is not None:
        out["cpu.percent"] = r.cpu_percent
        out["network.rx_bps"] = r.rx_bps
        out["network.tx_bps"] = r.tx_bps
    return out


def graphite_lines(
    cluster: str,
    samples: Sequence[NodeSample],
    rates: Mapping[str, Rates] | None = None,
    gauges: Mapping[str, float] | None = None,
    ts: float | None = None,
    prefix: str = "vhpc",
) -> list[str]:
    """Render plaintext-protocol lines for samples and named gauges (``slurm.nodes.idle``)."""
    base = f"{component(prefix)}.{component(cluster)}"
    lines = []
    for s in samples:
        node = f"{base}.{component(s.node)}"
        values = sample_values(s, (rates or {}).get(s.node))
        lines += [f"{node}.{k} {_fmt(v)} {int(s.ts)}\n" for k, v in values.items()]
    if gauges:
        when = int(ts if ts is not None else max((s.ts for s in samples), default=0))
        for name, value in gauges.items():
            path = ".".join(component(c) for c in name.split("."))
            lines.append(f"{base}.{path} {_fmt(value)} {when}\n")
    return lines


class GraphiteClient:
    """Sends samples to one carbon line receiver; never blocks the sampler."""

    def __init__(self, target: str, cluster: str, prefix: str = "vhpc") -> None:
        host, port = parse_hostport(target, DEFAULT_PORT)
        self.cluster = cluster
        self.prefix = prefix
        self.sender = TcpSender(host, port, name="graphite")

    def push(
        self,
        samples: Sequence[NodeSample],
        rates: Mapping[str, Rates] | None = None,
        gauges: Mapping[str, float] | None = None,
        ts: float | None = None,
    ) -> None:
        """Queue one sampling round (all nodes, and the Slurm gauges) for carbon."""
        lines = graphite_lines(self.cluster, samples, rates, gauges, ts, self.prefix)
        if lines:
            self.sender.send("".join(lines).encode())

    def close(self) -> None:
        """Flush briefly and stop."""
        self.sender.close()
