"""The job mix of `vhpc load` and the arithmetic of its report (workloads/load.py)."""

from __future__ import annotations

import pytest

from vhpc.load_runner import parse_records
from vhpc.workloads.load import (
    ClusterShape,
    JobRecord,
    LoadOptions,
    PartitionShape,
    generate,
    parse_max_time,
    partition_report,
    percentile,
    powers_of_two,
    summarize,
)

SHAPE = ClusterShape(users=(("cluser", "default"), ("alice", "physics"), ("bob", "chem")),
                     partitions=(PartitionShape("batch", 12, 1, 60),
                                 PartitionShape("gpu", 3, 2, None)),
                     qos=("normal", "debug", "long"))


def test_the_same_seed_gives_the_same_mix_and_another_seed_another() -> None:
    options = LoadOptions(seed=7, rate=5, count=200, fail_rate=0.1, oom_rate=0.1)
    first, again = generate(SHAPE, options), generate(SHAPE, options)
    other = generate(SHAPE, LoadOptions(seed=8, rate=5, count=200, fail_rate=0.1,
                                        oom_rate=0.1))
    assert first == again
    assert first != other
    assert len(first) == 200


def test_sizes_are_powers_of_two_within_the_partition_and_max_size() -> None:
    jobs = generate(SHAPE, LoadOptions(seed=1, count=500))
    sizes = {p.name: p.nodes for p in SHAPE.partitions}
    for job in jobs:
        assert job.nodes & (job.nodes - 1) == 0, job
        assert 1 <= job.nodes <= sizes[job.partition], job
    assert max(j.nodes for j in jobs if j.partition == "batch") == 8  # 16 > 12 nodes
    assert max(j.nodes for j in jobs if j.partition == "gpu") == 2
    capped = generate(SHAPE, LoadOptions(seed=1, count=300, max_size=2))
    assert {j.nodes for j in capped} == {1, 2}
    assert powers_of_two(1) == [1] and powers_of_two(12) == [1, 2, 4, 8]


def test_the_mix_spreads_over_users_partitions_qos_and_kinds() -> None:
    jobs = generate(SHAPE, LoadOptions(seed=3, count=400, fail_rate=0.2, oom_rate=0.1))
    assert {(j.user, j.account) for j in jobs} == set(SHAPE.users)
    assert {j.partition for j in jobs} == {"batch", "gpu"}
    assert {j.qos for j in jobs} == {"normal", "debug", "long"}
    kinds = [j.kind for j in jobs]
    assert 40 < kinds.count("fail") < 120 and 15 < kinds.count("oom") < 70
    oom = next(j for j in jobs if j.kind == "oom")
    assert any(a.startswith("--mem=") for a in oom.sbatch_args("x"))
    assert "exit 3" in next(j for j in jobs if j.kind == "fail").command()
    assert all(j.time_limit_minutes <= 60 for j in jobs if j.partition == "batch")


def test_rate_and_duration_set_the_arrivals() -> None:
    timed = generate(SHAPE, LoadOptions(seed=2, rate=4, duration=50))
    assert all(0 < j.at <= 50 for j in timed)
    assert 120 < len(timed) < 290  # Poisson around 200
    assert [j.at for j in timed] == sorted(j.at for j in timed)
    burst = generate(SHAPE, LoadOptions(seed=2, count=10))
    assert {j.at for j in burst} == {0.0}


def test_runtimes_have_the_mean_and_a_floor() -> None:
    for distribution in ("exponential", "lognormal"):
        jobs = generate(SHAPE, LoadOptions(seed=5, count=2000, mean_runtime=2.0,
                                           distribution=distribution))
        mean = sum(j.runtime for j in jobs) / len(jobs)
        assert 1.7 < mean < 2.3, (distribution, mean)
        assert min(j.runtime for j in jobs) >= 0.05
    fixed = generate(SHAPE, LoadOptions(seed=5, count=5, mean_runtime=0.3,
                                        distribution="fixed"))
    assert {j.runtime for j in fixed} == {0.3}


def test_no_accounting_means_no_qos_and_no_account() -> None:
    shape = ClusterShape(users=(("cluser", "default"),),
                         partitions=(PartitionShape("vhpc", 2),), qos=())
    args = generate(shape, LoadOptions(count=1))[0].sbatch_args("name")
    assert not any(a.startswith(("--qos", "--account")) for a in args)
    assert "--job-name=name" in args and args[-1].startswith("--wrap=sleep ")


@pytest.mark.parametrize(("options", "words"), [
    (LoadOptions(), "--count N or --duration"),
    (LoadOptions(count=0), "--count must be at least 1"),
    (LoadOptions(count=5, rate=0), "--rate must be in"),
    (LoadOptions(duration=-1), "--duration must be in"),
    (LoadOptions(count=5, fail_rate=1.5), "--fail-rate must be a fraction"),
    (LoadOptions(count=5, oom_rate=-0.1), "--oom-rate must be a fraction"),
    (LoadOptions(count=5, fail_rate=0.6, oom_rate=0.6), "must not exceed 1"),
    (LoadOptions(count=5, mean_runtime=0), "--mean-runtime must be in"),
    (LoadOptions(count=5, distribution="weibull"), "unknown runtime distribution"),
    (LoadOptions(count=5, max_size=0), "--max-size must be at least 1"),
])
def test_bad_options_are_one_line(options: LoadOptions, words: str) -> None:
    with pytest.raises(ValueError, match=words) as err:
        generate(SHAPE, options)
    assert "\n" not in str(err.value)


def test_a_cluster_without_partitions_is_refused() -> None:
    with pytest.raises(ValueError, match="no users or no partitions"):
        generate(ClusterShape(users=SHAPE.users, partitions=()), LoadOptions(count=1))


@pytest.mark.parametrize(("text", "minutes"), [
    ("", None), ("INFINITE", None), ("UNLIMITED", None), ("30", 30), ("1:00:00", 60),
    ("2-00:00:00", 2880), ("0:30", 1), ("1-12", 2160), ("nonsense", None),
])
def test_max_time_in_minutes(text: str, minutes: int | None) -> None:
    assert parse_max_time(text) == minutes


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.9) == 90.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([3.0], 0.99) == 3.0
    assert percentile([], 0.5) is None


def record(job: str, partition: str, state: str, submit: float, start: float | None,
           end: float | None, cpus: int = 1) -> JobRecord:
    return JobRecord(job, partition, state, submit, start, end, cpus)


TABLE = [  # a synthetic job table, the run starting at t=1000 and ending at t=1100
    record("1", "batch", "COMPLETED", 1000, 1000, 1050, cpus=2),   # wait 0, 100 cpu-s
    record("2", "batch", "COMPLETED", 1000, 1010, 1100, cpus=4),   # wait 10, 360 cpu-s
    record("3", "batch", "FAILED", 1020, 1040, 1060, cpus=1),      # wait 20, 20 cpu-s
    record("4", "gpu", "OUT_OF_MEMORY", 1030, 1060, 1070, cpus=2),  # wait 30, 20 cpu-s
    record("5", "gpu", "PENDING", 1090, None, None, cpus=2),
]


def test_the_report_of_a_synthetic_job_table() -> None:
    report = summarize(TABLE, SHAPE, seed=4, requested=6, refusals=["#5: nope"],
                       started=1000.0)
    assert report.seconds == 100.0
    assert (report.requested, report.refused, report.refusals) == (6, 1, ["#5: nope"])
    total = report.total
    assert (total.submitted, total.completed, total.failed, total.other) == (5, 2, 2, 1)
    assert (total.wait_p50, total.wait_p90, total.wait_p99) == (10.0, 30.0, 30.0)
    assert total.cpu_seconds == 500.0
    assert total.utilisation == pytest.approx(500 / (12 * 100), abs=1e-4)  # the larger partition
    assert total.throughput == pytest.approx(0.04)  # 4 ended in 100 s
    batch, gpu = report.partitions["batch"], report.partitions["gpu"]
    assert (batch.submitted, batch.completed, batch.failed) == (3, 2, 1)
    assert batch.utilisation == pytest.approx(480 / (12 * 100), abs=1e-4)
    assert batch.wait_p50 == 10.0
    assert (gpu.failed, gpu.other, gpu.cpu_seconds) == (1, 1, 20.0)
    assert gpu.utilisation == pytest.approx(20 / (6 * 100), abs=1e-4)


def test_total_cpus_of_the_shape_win_and_an_empty_window_is_zero() -> None:
    shape = ClusterShape(users=SHAPE.users, partitions=SHAPE.partitions, total_cpus=18)
    report = summarize(TABLE, shape, seed=0, requested=5, started=1000.0)
    assert report.total.utilisation == pytest.approx(500 / (18 * 100), abs=1e-4)
    empty = partition_report([], 0.0, 4)
    assert (empty.submitted, empty.utilisation, empty.throughput) == (0, 0.0, 0.0)


def test_whole_second_bookings_never_make_utilisation_exceed_one() -> None:
    # 3 jobs of 2 s on one CPU from 1000.9 to 1006.9: Slurm booked each start and end in
    # whole seconds, 10 CPU-seconds (as CI saw) in a window of 4.8 s on 2 CPUs
    booked = [JobRecord(str(i), "batch", "COMPLETED", 1000.0, start, start + length, 1)
              for i, (start, length) in enumerate(((1000.0, 3.0), (1000.0, 3.0),
                                                   (1003.0, 4.0)))]
    report = partition_report(booked, 4.8, 2)
    assert report.cpu_seconds == 10.0
    assert report.utilisation == 1.0


def test_squeue_and_sacct_lines_become_records() -> None:
    text = ("12|batch|COMPLETED|1000|1001|1003|2\n"
            "13|batch|CANCELLED by 0|1000|Unknown|1005|1\n"
            "14|gpu|PENDING|1002|1500|0|4\n"
            "garbage\n")
    records = parse_records(text)
    assert set(records) == {"12", "13", "14"}
    assert records["12"] == JobRecord("12", "batch", "COMPLETED", 1000, 1001, 1003, 2)
    assert records["13"].state == "CANCELLED" and records["13"].start is None
    assert records["14"].start is None and records["14"].end is None  # expected start


def test_the_runner_counts_jobs_slurmctld_forgot_by_their_last_state() -> None:
    """A run longer than MinJobAge: jobs gone from squeue still count as ended."""
    import threading

    from vhpc.load_runner import LoadProgress, LoadRunner

    polls = iter([
        {"1": record("1", "vhpc", "COMPLETED", 1000, 1000, 1001),
         "2": record("2", "vhpc", "RUNNING", 1000, 1001, None)},
        {"2": record("2", "vhpc", "COMPLETED", 1000, 1001, 1003)},  # 1 was purged
    ])
    runner = LoadRunner.__new__(LoadRunner)
    runner.state, runner.seen, runner.progress = LoadProgress(2, submitted=2), {}, None
    runner.stop, runner.wait_timeout = threading.Event(), 5.0
    runner._lock = threading.Lock()
    runner.queue = lambda: next(polls)  # type: ignore[method-assign]
    assert runner._wait_all(started=1000.0) is False  # ended: both jobs, not only job 2
    assert {r.state for r in runner.seen.values()} == {"COMPLETED"}
    assert runner.state.states["COMPLETED"] == 2
