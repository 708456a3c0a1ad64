"""Take one sample of a node: cgroup counters plus veth counters, as a NodeSample."""

from __future__ import annotations

import time
from pathlib import Path

from vhpc.observe.netstats import SYS_CLASS_NET, read_veth
from vhpc.observe.samples import NodeHandle, NodeSample
from vhpc.runtime.cgroups import read_cgroup


def sample_node(
    node: NodeHandle, ts: float | None = None, net_root: Path = SYS_CLASS_NET
) -> NodeSample:
    """Read ``node``'s cgroup and veth counters now (pure reader, paths injected)."""
    cg = read_cgroup(node.cgroup)
    net = read_veth(node.veth, net_root)
    return NodeSample(
        node=node.name,
        ts=time.time() if ts is None else ts,
        mem_bytes=cg.mem_bytes,
        mem_limit=cg.mem_limit,
        mem_peak=cg.mem_peak,
        oom_kills=cg.oom_kills,
        failcnt=cg.failcnt,
        cpu_ns=cg.cpu_ns,
        nprocs=cg.nprocs,
        rx_bytes=net.rx_bytes,
        tx_bytes=net.tx_bytes,
        rx_packets=net.rx_packets,
        tx_packets=net.tx_packets,
    )
