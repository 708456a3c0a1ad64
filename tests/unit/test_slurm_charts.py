"""The dashboard's queue and utilisation charts: sinfo's CPU counts become gauges, the
gauges become the ``queue`` and ``utilisation`` series of GET /api/v1/metrics."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from vhpc.observe.metrics_store import MetricsStore
from vhpc.observe.samples import SlurmGauges
from vhpc.observe.views import metrics_payload
from vhpc.services.slurm_client import cpu_counts

T0 = 1_800_000_000.0


@pytest.fixture
def store(tmp_path: Path) -> Iterator[MetricsStore]:
    st = MetricsStore(tmp_path / "m.sqlite")
    yield st
    st.close()


def test_cpu_counts_sum_nodes_once_across_partitions() -> None:
    text = ("compute0 mixed 1/1/0/2\ncompute1 allocated 2/0/0/2\n"
            "compute0 mixed 1/1/0/2\n"  # compute0 twice: in two partitions
            "gpu0 idle 0/4/0/4\nbroken line\n")
    assert cpu_counts(text) == {"allocated": 3, "idle": 5, "other": 0, "total": 8}
    assert cpu_counts("") == {} and cpu_counts("sinfo: error\n") == {}


def test_cpu_gauges_round_trip_through_the_series() -> None:
    gauges = SlurmGauges({"idle": 1}, {"running": 1}, 2, cpus={"allocated": 1, "total": 4})
    series = gauges.as_series()
    assert series["slurm.cpus.allocated"] == 1.0 and series["slurm.cpus.total"] == 4.0
    assert SlurmGauges.from_series(series) == gauges


def test_queue_and_utilisation_series(store: MetricsStore) -> None:
    for i, (pending, running, allocated) in enumerate([(5, 2, 2), (3, 4, 4), (0, 1, 1)]):
        gauges = SlurmGauges({}, {"pending": pending, "running": running}, 0,
                             cpus={"allocated": allocated, "total": 4})
        store.write_gauges(T0 + 10 * i, gauges.as_series())
    store.flush()
    queue = metrics_payload(store, "queue", 60, T0 + 30, 5)["series"]
    assert [s["node"] for s in queue] == ["pending", "running"]
    assert [p[1] for p in queue[0]["points"]] == [5, 3, 0]
    assert [p[1] for p in queue[1]["points"]] == [2, 4, 1]
    util = metrics_payload(store, "utilisation", 60, T0 + 30, 5)["series"]
    assert [s["node"] for s in util] == ["allocated"]
    assert [p[1] for p in util[0]["points"]] == [50.0, 100.0, 25.0]
