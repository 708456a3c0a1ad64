"""Observer end to end on fake nodes: ticks, rates, OOM events, logs, JSON payloads."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from vhpc.observe import NodeHandle, Observer, SlurmGauges
from vhpc.observe.fakefs import fake_cluster, write_v1
from vhpc.observe.log_store import LogRow
from vhpc.observe.views import TOTAL, pick_step


def slurmd_log(node: NodeHandle) -> Path:
    """The fake node's one slurmd log file (fake_cluster makes a single file per service)."""
    path = node.log_files["slurmd"]
    assert isinstance(path, Path)
    return path


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def env(tmp_path: Path) -> Iterator[tuple[Observer, list[NodeHandle], Clock, Path]]:
    nodes = fake_cluster(tmp_path, 3)
    clock = Clock()
    obs = Observer(tmp_path / "state", "vc", lambda: nodes,
                   slurm_provider=lambda: SlurmGauges({"idle": 3}, {"running": 0}, 0),
                   net_root=tmp_path / "net", clock=clock)
    yield obs, nodes, clock, tmp_path
    obs.stop()


def test_tick_rates_and_node_metrics(env: tuple[Observer, list[NodeHandle], Clock, Path]) -> None:
    obs, _nodes, clock, root = env
    assert len(obs.tick()) == 3
    clock.now += 5
    write_v1(root / "cgroup", "compute1", mem=20 << 20, cpu_ns=1 * 10**9 + 2_500_000_000)
    obs.tick()
    m = obs.node_metrics()["compute1"]
    assert m["cpu_percent"] == pytest.approx(50.0)
    assert m["memory_usage"] == 20 << 20
    assert m["memory_limit"] == 125 << 20
    obs.metrics_store.flush()
    payload = obs.metrics_json("memory", since=60)
    names = [s["node"] for s in payload["series"]]
    assert names == [TOTAL, "compute1", "compute2", "compute3"]
    assert payload["series"][1]["points"][-1][1] == 20 << 20
    cpu = obs.metrics_json("cpu", since=60, node="compute1")["series"]
    assert [s["node"] for s in cpu] == ["compute1"]
    text = obs.prometheus_text().decode()
    assert 'vhpc_node_memory_bytes{cluster="vc",node="compute1"} 2.097152e+07' in text
    assert 'vhpc_slurm_nodes{cluster="vc",state="idle"} 3.0' in text


def test_oom_kill_becomes_an_event(env: tuple[Observer, list[NodeHandle], Clock, Path]) -> None:
    obs, _nodes, clock, root = env
    obs.tick()
    clock.now += 5
    write_v1(root / "cgroup", "compute2", oom_kills=1)
    obs.tick()
    obs.record_event("node compute4 added", node="compute4")
    obs.log_store.flush()
    events = obs.events_json()["events"]
    assert [e["level"] for e in events] == ["info", "error"]
    assert "OOM" in events[1]["message"]
    assert events[1]["node"] == "compute2"


def test_logs_are_collected_with_node_and_service(
    env: tuple[Observer, list[NodeHandle], Clock, Path],
) -> None:
    obs, nodes, _clock, _root = env
    obs.tick()  # learns the log files
    slurmd_log(nodes[0]).write_text("[2026-11-28T15:00:00.000] error: boom\n")
    assert obs.poll_logs() == 1
    obs.log_store.flush()
    logs = obs.logs_json(q="boom")["logs"]
    assert [(r["node"], r["service"], r["level"]) for r in logs] == [
        ("compute1", "slurmd", "error")]
    assert obs.logs_json(level="error", node="compute2")["logs"] == []
    assert [r.message for r in obs.wait_logs(0, timeout=0.1)] == ["boom"]
    assert obs.wait_logs(logs[0]["id"], timeout=0.05) == []


def test_threads_run_and_stop(tmp_path: Path) -> None:
    nodes = fake_cluster(tmp_path, 2)
    obs = Observer(tmp_path / "s", "vc", lambda: nodes, interval=0.05, log_interval=0.05,
                   net_root=tmp_path / "net")
    obs.start()
    slurmd_log(nodes[1]).write_text("hello\n")
    deadline = time.monotonic() + 5
    found: list[LogRow] = []
    while time.monotonic() < deadline and not found:
        found = obs.log_store.search(q="hello")
        time.sleep(0.05)
    obs.stop()
    assert [r.node for r in found] == ["compute2"]
    assert len(obs.latest()) == 2


def test_failing_providers_do_not_stop_sampling(tmp_path: Path) -> None:
    def broken() -> SlurmGauges:
        raise RuntimeError("sinfo: error")

    nodes = fake_cluster(tmp_path, 1)
    obs = Observer(tmp_path / "s", "vc", lambda: nodes, slurm_provider=broken,
                   net_root=tmp_path / "net")
    assert len(obs.tick()) == 1
    assert "vhpc_observe_slurm_errors_total" in obs.prometheus_text().decode()
    obs.stop()


def test_pick_step() -> None:
    assert pick_step(600, 5.0) == 5.0
    assert pick_step(3600, 5.0) == 15.0
    assert pick_step(86400, 5.0) == 360.0
