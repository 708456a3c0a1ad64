"""Samplers against directories laid out like cgroup v1, cgroup v2 and /sys/class/net."""

from __future__ import annotations

from pathlib import Path

import pytest

from vhpc.observe.fakefs import write_v1, write_v2, write_veth
from vhpc.observe.netstats import read_veth
from vhpc.observe.sampler import sample_node
from vhpc.observe.samples import NodeHandle, NodeSample, cpu_percent, rates
from vhpc.runtime.cgroups import read_cgroup, read_v1, read_v2


def test_v1_reads_every_counter(tmp_path: Path) -> None:
    dirs = write_v1(tmp_path, "c1", mem=50 << 20, limit=125 << 20, peak=90 << 20,
                    failcnt=7, oom_kills=2, cpu_ns=3_000_000_000, pids=(10, 11, 12))
    st = read_v1(dirs)
    assert st.mem_bytes == 50 << 20
    assert st.mem_limit == 125 << 20
    assert st.mem_peak == 90 << 20
    assert st.failcnt == 7
    assert st.oom_kills == 2
    assert st.cpu_ns == 3_000_000_000
    assert st.nprocs == 3


def test_v1_unlimited_and_old_kernel_without_oom_kill_line(tmp_path: Path) -> None:
    dirs = write_v1(tmp_path, "c1", limit=9223372036854771712)
    (dirs["memory"] / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\n")
    st = read_v1(dirs)
    assert st.mem_limit is None
    assert st.oom_kills == 0


def test_v1_accepts_combined_cpu_controller_key(tmp_path: Path) -> None:
    dirs = write_v1(tmp_path, "c1", cpu_ns=42)
    st = read_v1({"memory": dirs["memory"], "cpu,cpuacct": dirs["cpuacct"]})
    assert st.cpu_ns == 42


def test_v2_reads_every_counter(tmp_path: Path) -> None:
    d = write_v2(tmp_path, "c1", mem=60 << 20, limit=125 << 20, peak=100 << 20,
                 oom_kills=4, cpu_usec=2_500_000, pids=(1, 2))
    st = read_v2(d)
    assert (st.mem_bytes, st.mem_limit, st.mem_peak) == (60 << 20, 125 << 20, 100 << 20)
    assert st.oom_kills == 4
    assert st.failcnt is None
    assert st.cpu_ns == 2_500_000_000
    assert st.nprocs == 2


def test_v2_max_limit_no_peak_and_procs_fallback(tmp_path: Path) -> None:
    d = write_v2(tmp_path, "c1", limit=None, peak=None, pids=(1, 2, 3), pids_current=False)
    st = read_v2(d)
    assert st.mem_limit is None
    assert st.mem_peak is None
    assert st.nprocs == 3


def test_dispatch_by_type_and_vanished_cgroup(tmp_path: Path) -> None:
    assert read_cgroup(write_v2(tmp_path, "a", mem=5)).mem_bytes == 5
    assert read_cgroup(write_v1(tmp_path, "b", mem=6)).mem_bytes == 6
    gone = read_cgroup(tmp_path / "nope")
    assert (gone.mem_bytes, gone.cpu_ns, gone.nprocs, gone.mem_limit) == (0, 0, 0, None)
    assert read_cgroup(None).mem_bytes == 0


def test_veth_counters_are_swapped_to_the_node_view(tmp_path: Path) -> None:
    write_veth(tmp_path, "vh1", rx_bytes=100, tx_bytes=900, rx_packets=1, tx_packets=9)
    net = read_veth("vh1", tmp_path)
    assert (net.rx_bytes, net.tx_bytes) == (900, 100)
    assert (net.rx_packets, net.tx_packets) == (9, 1)
    assert read_veth("missing", tmp_path).rx_bytes == 0
    assert read_veth("../etc", tmp_path).rx_bytes == 0


def test_sample_node_combines_cgroup_and_veth(tmp_path: Path) -> None:
    dirs = write_v1(tmp_path / "cg", "c1", mem=1234, cpu_ns=10, pids=(5,))
    write_veth(tmp_path / "net", "vh1", rx_bytes=7, tx_bytes=8)
    s = sample_node(NodeHandle("c1", dirs, "vh1"), ts=100.0, net_root=tmp_path / "net")
    assert s == NodeSample("c1", 100.0, 1234, 125 << 20, 0, 0, 0, 10, 1, 8, 7, 0, 0)


def _s(ts: float, cpu_ns: int, rx: int = 0, tx: int = 0) -> NodeSample:
    return NodeSample("n", ts, 0, None, None, 0, None, cpu_ns, 0, rx, tx, 0, 0)


def test_cpu_percent_and_rates() -> None:
    a, b = _s(100.0, 0, 0, 0), _s(105.0, 2_500_000_000, 5000, 10_000)
    assert cpu_percent(a, b) == pytest.approx(50.0)
    r = rates(a, b)
    assert r is not None
    assert (r.cpu_percent, r.rx_bps, r.tx_bps) == pytest.approx((50.0, 1000.0, 2000.0))
    assert cpu_percent(b, b) is None
    assert rates(None, b) is None


def test_counter_reset_counts_from_zero() -> None:
    r = rates(_s(0.0, 10**10), _s(1.0, 5 * 10**8))
    assert r is not None
    assert r.cpu_percent == pytest.approx(50.0)
