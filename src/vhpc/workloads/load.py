"""The job mix of `vhpc load`, and the arithmetic of its report: pure functions, no Slurm.

:func:`generate` turns a cluster's shape (users and their accounts, partitions, QOS) and
the load options into a list of job requests, the same list for the same seed;
:func:`summarize` turns the jobs' accounting records into the report (wait-time
percentiles, throughput, utilisation, per partition). The runner (vhpc/load_runner.py)
submits the requests and reads the records.
"""

from __future__ import annotations

import math
import random
import re
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pydantic import BaseModel, Field

#: Job states counted as completed and as failed; every other terminal state is "other".
COMPLETED = frozenset({"COMPLETED"})
FAILED = frozenset({"FAILED", "OUT_OF_MEMORY", "TIMEOUT", "NODE_FAIL", "BOOT_FAIL",
                    "DEADLINE"})
TERMINAL = COMPLETED | FAILED | frozenset({"CANCELLED", "PREEMPTED", "REVOKED",
                                           "SPECIAL_EXIT"})
DISTRIBUTIONS = ("exponential", "lognormal", "fixed")
DEFAULT_QOS = ("normal",)
MIN_RUNTIME = 0.05  # seconds: below this, sleep's fork costs more than the job
OOM_MEM_MB = 16  # what a memory-hungry job asks for (--mem), then it touches 8x that
FAIL_EXIT = 3


@dataclass(frozen=True)
class PartitionShape:
    """A partition as the load sees it: its compute nodes and their CPUs."""

    name: str
    nodes: int
    cpus_per_node: int = 1
    max_minutes: int | None = None  # MaxTime; None = unlimited


@dataclass(frozen=True)
class ClusterShape:
    """Who submits where: (user, account) pairs, partitions and QOS names."""

    users: tuple[tuple[str, str], ...]
    partitions: tuple[PartitionShape, ...]
    qos: tuple[str, ...] = DEFAULT_QOS  # () = no accounting: no --qos, no --account
    total_cpus: int = 0  # CPUs of all compute nodes; 0 = the largest partition's


@dataclass(frozen=True)
class LoadOptions:
    """How much load, and of which kind (the `vhpc load` options)."""

    seed: int = 0
    rate: float | None = None  # jobs per second; None = as fast as possible (count only)
    count: int | None = None
    duration: float | None = None  # seconds of submitting
    mean_runtime: float = 1.0
    distribution: str = "exponential"
    fail_rate: float = 0.0
    oom_rate: float = 0.0
    max_size: int | None = None  # largest job in nodes (None: the partition's size)


@dataclass(frozen=True)
class JobRequest:
    """One job to submit: when (seconds from the start), as whom, where, how big, what."""

    index: int
    at: float
    user: str
    account: str
    partition: str
    qos: str
    nodes: int
    runtime: float
    kind: str  # "ok", "fail" or "oom"
    time_limit_minutes: int

    def command(self) -> str:
        """The shell line the job runs (sbatch --wrap)."""
        sleep = f"sleep {self.runtime:.2f}"
        if self.kind == "fail":
            return f"{sleep}; exit {FAIL_EXIT}"
        if self.kind == "oom":  # tail keeps a line without newline in memory: it grows
            return f"{sleep}; head -c {OOM_MEM_MB * 8}M /dev/zero | tail > /dev/null"
        return sleep

    def sbatch_args(self, name: str) -> list[str]:
        """sbatch's options for this job (without the script)."""
        args = ["--parsable", f"--job-name={name}", f"--partition={self.partition}",
                f"--nodes={self.nodes}", "--ntasks-per-node=1",
                f"--time={self.time_limit_minutes}", "--output=/dev/null", "--error=/dev/null"]
        if self.qos:  # with accounting: the user's account and a QOS of the cluster
            args += [f"--account={self.account}", f"--qos={self.qos}"]
        if self.kind == "oom":
            args.append(f"--mem={OOM_MEM_MB}M")
        return [*args, f"--wrap={self.command()}"]

    def describe(self) -> str:
        """One line for logs: who, where, size, what."""
        return (f"#{self.index} {self.user}/{self.account} {self.partition} qos={self.qos} "
                f"-N{self.nodes} {self.runtime:.2f}s {self.kind}: "
                f"{shlex.quote(self.command())}")


def check_options(options: LoadOptions) -> None:
    """Refuse options that make no finite or sensible load (ValueError, one line)."""
    if options.count is None and options.duration is None:
        raise ValueError("say how much load: --count N or --duration SECONDS")
    if options.count is not None and options.count < 1:
        raise ValueError(f"--count must be at least 1, not {options.count}")
    if options.duration is not None and not 0 < options.duration <= 86400:
        raise ValueError(f"--duration must be in (0, 86400] seconds, not {options.duration:g}")
    if options.rate is not None and not 0 < options.rate <= 1000:
        raise ValueError(f"--rate must be in (0, 1000] jobs/s, not {options.rate:g}")
    if not 0 < options.mean_runtime <= 86400:
        raise ValueError(f"--mean-runtime must be in (0, 86400] seconds, "
                         f"not {options.mean_runtime:g}")
    for flag, value in (("--fail-rate", options.fail_rate), ("--oom-rate", options.oom_rate)):
        if not 0 <= value <= 1:
            raise ValueError(f"{flag} must be a fraction in [0, 1], not {value:g}")
    if options.fail_rate + options.oom_rate > 1:
        raise ValueError("--fail-rate plus --oom-rate must not exceed 1")
    if options.distribution not in DISTRIBUTIONS:
        raise ValueError(f"unknown runtime distribution {options.distribution!r} "
                         f"(one of {', '.join(DISTRIBUTIONS)})")
    if options.max_size is not None and options.max_size < 1:
        raise ValueError(f"--max-size must be at least 1 node, not {options.max_size}")


def powers_of_two(limit: int) -> list[int]:
    """1, 2, 4, ... up to `limit` (at least [1])."""
    sizes = [1]
    while sizes[-1] * 2 <= limit:
        sizes.append(sizes[-1] * 2)
    return sizes


def pick_size(rng: random.Random, limit: int) -> int:
    """A job size in nodes: a power of two up to `limit`, small ones likelier (1/2^k)."""
    sizes = powers_of_two(limit)
    return rng.choices(sizes, weights=[1.0 / s for s in sizes])[0]


def pick_runtime(rng: random.Random, mean: float, distribution: str) -> float:
    """A run time in seconds with the given mean, rounded to 10 ms."""
    if distribution == "fixed":
        value = mean
    elif distribution == "lognormal":
        sigma = 1.0
        value = rng.lognormvariate(math.log(mean) - sigma * sigma / 2, sigma)
    else:
        value = rng.expovariate(1.0 / mean)
    return round(max(MIN_RUNTIME, value), 2)


def time_limit_minutes(runtime: float, partition: PartitionShape) -> int:
    """A --time that lets the job finish with room (twice its run time plus a minute)."""
    minutes = math.ceil(runtime * 2 / 60) + 1
    return min(minutes, partition.max_minutes) if partition.max_minutes else minutes


def arrivals(rng: random.Random, options: LoadOptions) -> list[float]:
    """Submission times in seconds from the start (Poisson arrivals at the rate)."""
    rate = options.rate
    if rate is None and options.count is not None and options.duration is not None:
        rate = options.count / options.duration
    if rate is None and options.count is None:
        rate = 1.0  # --duration alone
    if rate is None:  # --count alone: as fast as the submitter goes
        return [0.0] * (options.count or 0)
    times: list[float] = []
    now = 0.0
    while True:
        if options.count is not None and len(times) >= options.count:
            return times
        now += rng.expovariate(rate)
        if options.duration is not None and now > options.duration:
            return times
        times.append(round(now, 3))


def generate(shape: ClusterShape, options: LoadOptions) -> list[JobRequest]:
    """The job mix: the same list for the same shape, options and seed."""
    check_options(options)
    if not shape.users or not shape.partitions:
        raise ValueError("the cluster has no users or no partitions with nodes to load")
    rng = random.Random(options.seed)
    jobs = []
    for index, at in enumerate(arrivals(rng, options)):
        user, account = rng.choice(shape.users)
        partition = rng.choice(shape.partitions)
        limit = min(partition.nodes, options.max_size or partition.nodes)
        runtime = pick_runtime(rng, options.mean_runtime, options.distribution)
        draw = rng.random()
        kind = ("fail" if draw < options.fail_rate
                else "oom" if draw < options.fail_rate + options.oom_rate else "ok")
        jobs.append(JobRequest(
            index=index, at=at, user=user, account=account, partition=partition.name,
            qos=rng.choice(shape.qos) if shape.qos else "", nodes=pick_size(rng, limit),
            runtime=runtime, kind=kind, time_limit_minutes=time_limit_minutes(runtime, partition)))
    return jobs


def parse_max_time(text: str) -> int | None:
    """Slurm's MaxTime ("30", "1:00:00", "2-00:00:00", "INFINITE") in minutes."""
    text = text.strip()
    if not text or text.upper() in ("INFINITE", "UNLIMITED"):
        return None
    match = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text)
    if match is None:
        return None
    days, first, second, third = match.groups()
    if third is not None:  # [D-]H:M:S
        minutes = int(first) * 60 + int(second or 0) + (1 if int(third) else 0)
    elif second is not None:  # D-H:M or M:S
        minutes = int(first) * 60 + int(second) if days else int(first) + bool(int(second))
    else:  # D-H or M
        minutes = int(first) * 60 if days else int(first)
    return minutes + int(days or 0) * 1440


# -- the report -----------------------------------------------------------------------


@dataclass(frozen=True)
class JobRecord:
    """What accounting (or squeue) says of one submitted job; times are Unix seconds."""

    job_id: str
    partition: str
    state: str
    submit: float
    start: float | None
    end: float | None
    cpus: int


class PartitionReport(BaseModel):
    """The report's numbers for one partition (or for the whole run)."""

    submitted: int = 0
    completed: int = 0
    failed: int = 0
    other: int = Field(default=0, description="cancelled, still pending or running")
    wait_p50: float | None = Field(default=None, description="seconds from submit to start")
    wait_p90: float | None = None
    wait_p99: float | None = None
    throughput: float = Field(default=0.0, description="jobs ended per second of the run")
    cpu_seconds: float = 0.0
    utilisation: float = Field(default=0.0, description="CPU-seconds used / available "
                               "(at most 1: Slurm books whole seconds, so a run of short "
                               "jobs can book more than the window had)")


class LoadReport(BaseModel):
    """What `vhpc load` prints at the end (`--json`), and `Cluster.load()` returns."""

    seed: int
    requested: int = Field(description="jobs in the generated mix")
    refused: int = Field(default=0, description="jobs sbatch refused")
    refusals: list[str] = Field(default_factory=list, description="sbatch's reasons (first 5)")
    interrupted: bool = False
    started: float = Field(description="Unix time the first job was submitted")
    seconds: float = Field(description="from the first submission to the last job's end")
    submit_rate: float = Field(default=0.0, description="jobs/s sbatch accepted, from the "
                                                        "start to the last submission")
    submit_lag_p90: float | None = Field(default=None, description="seconds after its "
                                         "planned time a submission returned (p90): the "
                                         "generator kept up if small")
    total: PartitionReport
    partitions: dict[str, PartitionReport]


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """The nearest-rank percentile (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def partition_report(records: Iterable[JobRecord], window: float,
                     total_cpus: int) -> PartitionReport:
    """Counts, wait percentiles, throughput and utilisation of some records."""
    records = list(records)
    waits = [r.start - r.submit for r in records if r.start is not None]
    used = sum(max(0.0, (r.end or r.start) - r.start) * r.cpus
               for r in records if r.start is not None and r.end is not None)
    ended = sum(1 for r in records if r.state in TERMINAL)
    available = total_cpus * window
    return PartitionReport(
        submitted=len(records),
        completed=sum(1 for r in records if r.state in COMPLETED),
        failed=sum(1 for r in records if r.state in FAILED),
        other=sum(1 for r in records if r.state not in COMPLETED | FAILED),
        wait_p50=percentile(waits, 0.5), wait_p90=percentile(waits, 0.9),
        wait_p99=percentile(waits, 0.99),
        throughput=round(ended / window, 3) if window > 0 else 0.0,
        cpu_seconds=round(used, 2),
        utilisation=round(min(used / available, 1.0), 4) if available > 0 else 0.0)


def summarize(records: Sequence[JobRecord], shape: ClusterShape, *, seed: int,
              requested: int, refusals: Sequence[str] = (), started: float,
              interrupted: bool = False, until: float | None = None,
              last_submit: float | None = None, lags: Sequence[float] = ()) -> LoadReport:
    """The report of a run: overall and per partition, over [started, last end]."""
    ends = [r.end for r in records if r.end is not None]
    stop = until if until is not None else max(ends, default=started)
    window = max(stop - started, 0.0)
    cpus = {p.name: p.nodes * p.cpus_per_node for p in shape.partitions}
    names = sorted({*cpus, *(r.partition for r in records)})
    return LoadReport(
        seed=seed, requested=requested, refused=len(refusals), refusals=list(refusals[:5]),
        interrupted=interrupted, started=started, seconds=round(window, 3),
        submit_rate=round(len(records) / max(last_submit - started, 1e-3), 2)
        if last_submit is not None and records else 0.0,
        submit_lag_p90=None if not lags else round(percentile(lags, 0.9) or 0.0, 3),
        total=partition_report(records, window, total_cluster_cpus(shape)),
        partitions={name: partition_report([r for r in records if r.partition == name],
                                           window, cpus.get(name, 0)) for name in names})


def total_cluster_cpus(shape: ClusterShape) -> int:
    """CPUs of the cluster's compute nodes (else the largest partition's)."""
    if shape.total_cpus:
        return shape.total_cpus
    return max((p.nodes * p.cpus_per_node for p in shape.partitions), default=0)
