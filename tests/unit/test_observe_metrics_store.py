"""MetricsStore: raw samples, derived rates, rollups, retention, series, gauges."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from vhpc.observe.metrics_store import MetricsStore, Retention
from vhpc.observe.samples import NodeSample, SlurmGauges

T0 = 1_800_000_000.0  # a minute boundary


def s(node: str, ts: float, mem: int = 0, cpu_s: float = 0.0, rx: int = 0,
      oom: int = 0) -> NodeSample:
    return NodeSample(node, ts, mem, 100 << 20, None, oom, None, int(cpu_s * 1e9), 1,
                      rx, 0, 0, 0)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[MetricsStore]:
    st = MetricsStore(tmp_path / "m.sqlite", Retention(raw_seconds=600, rollup_seconds=3600))
    yield st
    st.close()


def test_latest_and_rates(store: MetricsStore) -> None:
    store.write([s("a", T0, mem=10, cpu_s=0), s("b", T0, mem=20)])
    store.write([s("a", T0 + 5, mem=11, cpu_s=2.5, rx=5000), s("b", T0 + 5, mem=21)])
    store.flush()
    latest = store.latest()
    assert sorted(latest) == ["a", "b"]
    assert latest["a"].mem_bytes == 11
    assert latest["a"].mem_limit == 100 << 20
    r = store.latest_rates()["a"]
    assert r.cpu_percent == pytest.approx(50.0)
    assert r.rx_bps == pytest.approx(1000.0)
    tot = store.totals()
    assert (tot.nodes, tot.mem_bytes, tot.mem_limit) == (2, 32, 200 << 20)
    assert tot.cpu_percent == pytest.approx(50.0)
    assert store.latest(since=T0 + 6) == {}


def test_series_raw_and_stepped(store: MetricsStore) -> None:
    store.write([s("a", T0 + i * 5, mem=i * 10, cpu_s=i) for i in range(12)])
    store.flush()
    raw = store.series("a", "memory", T0)
    assert raw[:3] == [(T0, 0.0), (T0 + 5, 10.0), (T0 + 10, 20.0)]
    stepped = store.series("a", "memory", T0, step=30)
    assert stepped == [(T0, 25.0), (T0 + 30, 85.0)]
    cpu = store.series("a", "cpu", T0)
    assert len(cpu) == 11  # the first sample has no previous one
    assert cpu[0][1] == pytest.approx(20.0)
    assert store.series("zzz", "memory", T0) == []
    with pytest.raises(ValueError):
        store.series("a", "bogus", T0)


def test_cluster_series_sums_nodes(store: MetricsStore) -> None:
    for i in range(4):
        store.write([s("a", T0 + i * 5, mem=100), s("b", T0 + i * 5, mem=50)])
    store.flush()
    assert store.cluster_series("memory", T0, step=5) == [(T0 + i * 5, 150.0) for i in range(4)]
    by_node = store.series_by_node("memory", T0, step=10)
    assert set(by_node) == {"a", "b"}


def test_rollup_and_retention(store: MetricsStore) -> None:
    # 20 minutes of samples every 10 s; raw kept 600 s, rollups 3600 s
    for i in range(120):
        store.write([s("a", T0 + i * 10, mem=1000 + (i // 6))])
    store.flush()
    now = T0 + 119 * 10
    points = store.series("a", "memory", 0)
    first_raw = min(t for t, _ in points if t % 60 != 0)
    assert now - 660 <= first_raw <= now - 600 + 10  # pruned once a minute
    rollups = [p for p in points if p[0] < first_raw]
    assert rollups[0] == (T0, 1000.0)  # minute 0: samples 0..5 all had mem 1000
    assert all(t % 60 == 0 for t, _ in rollups)
    assert [t for t, _ in rollups] == sorted({t for t, _ in rollups})  # no duplicates
    assert len(points) - len(rollups) >= 60  # about 10 minutes of 10-second samples
    assert min(t for t, _ in store.series("a", "memory", T0 + 1100)) >= T0 + 1100

def test_gauges_latest_and_series(store: MetricsStore) -> None:
    g1 = SlurmGauges({"idle": 3, "down": 1}, {"running": 1}, 5)
    g2 = SlurmGauges({"idle": 4}, {"running": 2, "pending": 1}, 6)
    store.write_gauges(T0, g1.as_series())
    store.write_gauges(T0 + 5, g2.as_series())
    store.flush()
    latest = store.latest_gauges()
    assert "slurm.nodes.down" not in latest
    assert SlurmGauges.from_series(latest) == SlurmGauges(
        {"idle": 4}, {"running": 2, "pending": 1}, 6)
    assert store.gauge_series("slurm.jobs.running", T0) == [(T0, 1.0), (T0 + 5, 2.0)]


def test_reopen_keeps_rates_continuous(tmp_path: Path) -> None:
    st = MetricsStore(tmp_path / "m.sqlite")
    st.write([s("a", T0, cpu_s=0)])
    st.close()
    st = MetricsStore(tmp_path / "m.sqlite")
    st.write([s("a", T0 + 10, cpu_s=5)])
    st.flush()
    assert st.latest_rates()["a"].cpu_percent == pytest.approx(50.0)
    st.close()


def test_concurrent_readers_while_writing(store: MetricsStore) -> None:
    import threading

    errors: list[BaseException] = []

    def reader() -> None:
        try:
            for _ in range(50):
                store.latest()
                store.series_by_node("memory", 0, step=10)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    for i in range(200):
        store.write([s(f"n{j}", T0 + i, mem=i) for j in range(8)])
    for t in threads:
        t.join()
    store.flush()
    assert not errors
    assert len(store.latest()) == 8
