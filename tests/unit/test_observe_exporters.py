"""Prometheus text, Graphite lines and RFC 5424 syslog framing, as text."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from vhpc.observe.exporters import Snapshot, render_prometheus
from vhpc.observe.graphite import component, graphite_lines
from vhpc.observe.log_store import LogRecord
from vhpc.observe.samples import NodeSample, Rates, SlurmGauges
from vhpc.observe.syslog_forward import format_rfc5424, frame

S1 = NodeSample("compute1", 1_800_000_000.0, 50 << 20, 125 << 20, 60 << 20, 2, 9,
                3_500_000_000, 4, 1000, 2000, 10, 20)
S2 = NodeSample("compute2", 1_800_000_000.0, 1 << 20, None, None, 0, None, 0, 1, 0, 0, 0, 0)
SLURM = SlurmGauges({"IDLE": 1, "alloc": 1}, {"running": 1, "pending": 3}, 7)


def test_prometheus_text() -> None:
    text = render_prometheus("vc", lambda: Snapshot({"compute1": S1, "compute2": S2}, SLURM,
                                                    {"log_lines": 5}))
    fams = {f.name: f for f in text_string_to_metric_families(text.decode())}
    mem = {s.labels["node"]: s.value for s in fams["vhpc_node_memory_bytes"].samples}
    assert mem == {"compute1": 50 << 20, "compute2": 1 << 20}
    limits = fams["vhpc_node_memory_limit_bytes"].samples
    assert [(s.labels, s.value) for s in limits] == [
        ({"cluster": "vc", "node": "compute1"}, 125 << 20)]
    assert fams["vhpc_node_oom_kills"].type == "counter"
    assert "vhpc_node_oom_kills_total{" in text.decode()
    cpu = fams["vhpc_node_cpu_seconds"].samples[0]
    assert (cpu.name, cpu.value) == ("vhpc_node_cpu_seconds_total", 3.5)
    rx = fams["vhpc_node_network_receive_bytes"].samples[0]
    assert (rx.name, rx.value) == ("vhpc_node_network_receive_bytes_total", 1000)
    nodes = {s.labels["state"]: s.value for s in fams["vhpc_slurm_nodes"].samples}
    assert nodes == {"idle": 1, "alloc": 1}
    jobs = {s.labels["state"]: s.value for s in fams["vhpc_slurm_jobs"].samples}
    assert jobs == {"running": 1, "pending": 3}
    assert fams["vhpc_slurm_jobs_completed"].samples[0].value == 7
    assert fams["vhpc_observe_log_lines"].samples[0].value == 5


def test_prometheus_empty_snapshot() -> None:
    assert b"vhpc_node_memory_bytes" in render_prometheus("vc", Snapshot)


def test_graphite_lines() -> None:
    lines = graphite_lines("my.cluster", [S1], {"compute1": Rates(12.5, 100.0, 0.0)},
                           SLURM.as_series(), ts=1_800_000_005)
    assert "vhpc.my_cluster.compute1.memory.usage 52428800 1800000000\n" in lines
    assert "vhpc.my_cluster.compute1.memory.limit 131072000 1800000000\n" in lines
    assert "vhpc.my_cluster.compute1.cpu.percent 12.5 1800000000\n" in lines
    assert "vhpc.my_cluster.compute1.network.rx_bytes 1000 1800000000\n" in lines
    assert "vhpc.my_cluster.slurm.nodes.idle 1 1800000005\n" in lines
    assert "vhpc.my_cluster.slurm.jobs.pending 3 1800000005\n" in lines
    assert all(len(line.split(" ")) == 3 and line.endswith("\n") for line in lines)
    assert component("a b.c/d") == "a_b_c_d"


def test_rfc5424_and_octet_counting() -> None:
    rec = LogRecord(1_800_000_000.25, "compute1", "slurmd", "error", "bad thing\nline2")
    msg = format_rfc5424(rec, 'c"x')
    assert msg == (b'<27>1 2027-01-15T08:00:00.250000Z compute1 slurmd - - '
                   b'[vhpc@32473 cluster="c\\"x"] bad thing line2')
    assert frame(msg) == str(len(msg)).encode() + b" " + msg
    event = format_rfc5424(LogRecord(0.0, "", "vhpc", "info", "up"), "vc", facility=16)
    assert event.startswith(b"<134>1 1970-01-01T00:00:00.000000Z vc vhpc - - ")
    utf = format_rfc5424(LogRecord(0.0, "n", "s", "info", "héllo"), "vc")
    assert frame(utf).startswith(str(len(utf)).encode() + b" ")
    assert len(utf) == len(utf.decode()) + 1  # counted in octets, not characters


def test_rfc5424_event_kind_is_the_msgid() -> None:
    event = format_rfc5424(LogRecord(0.0, "compute3", "vhpc", "warning", "restarting slurmd",
                                     "daemon_restart"), "vc")
    assert b" vhpc - daemon_restart [" in event and event.endswith(b"] restarting slurmd")
