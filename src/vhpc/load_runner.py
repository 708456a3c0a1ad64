"""`vhpc load` against a running cluster: submit the job mix, watch it, report.

The mix comes from :mod:`vhpc.workloads.load` (pure); this module submits each job with
Slurm's own ``sbatch`` inside the controller node as the job's user (like
``Cluster.sbatch``, through ``control.exec_argv``), follows the queue with ``squeue`` from
the host, and reads the finished jobs from ``sacct`` (with accounting) for the report.
It runs in the caller's process (CLI, Python API, chaos runner).
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from vhpc import control
from vhpc.errors import UserError
from vhpc.runtime.hostops import CommandResult, run_command
from vhpc.services.host_clients import client_env
from vhpc.services.slurmdbd import DEFAULT_ACCOUNT, QOS
from vhpc.spec.load import CONTROLLER_NAME
from vhpc.spec.model import ClusterSpec
from vhpc.spec.paths import ClusterPaths
from vhpc.workloads.load import (
    TERMINAL,
    ClusterShape,
    JobRecord,
    JobRequest,
    LoadOptions,
    LoadReport,
    PartitionShape,
    generate,
    parse_max_time,
    summarize,
)

SUBMITTERS = 4  # sbatch processes at once: each is an nsenter + munge round trip
POLL = 1.0  # seconds between squeue polls


@dataclass
class LoadProgress:
    """Counts for the live view: submitted so far and the queue by state."""

    requested: int
    submitted: int = 0
    refused: int = 0
    states: Counter[str] = field(default_factory=Counter)
    elapsed: float = 0.0

    def line(self) -> str:
        """One line: submitted/running/pending/completed/failed."""
        done = self.states["COMPLETED"]
        failed = sum(n for s, n in self.states.items() if s in TERMINAL and s != "COMPLETED")
        return (f"submitted {self.submitted}/{self.requested}  pending {self.states['PENDING']}"
                f"  running {self.states['RUNNING'] + self.states['COMPLETING']}"
                f"  completed {done}  failed {failed}"
                + (f"  refused {self.refused}" if self.refused else "")
                + f"  {self.elapsed:.0f}s")


ProgressFn = Callable[[LoadProgress], None]


def cluster_shape(spec: ClusterSpec) -> ClusterShape:
    """Users (with accounts), partitions (with live compute nodes) and QOS of a cluster."""
    computes = [n for n in spec.computes if not n.stopped]
    users = ((spec.user, DEFAULT_ACCOUNT), *((u.name, u.account) for u in spec.users))
    if spec.partitions:
        shapes = []
        for part in spec.partitions:
            members = [n for n in computes if n.name in part.nodes or part.holds(n)]
            if members:
                shapes.append(PartitionShape(part.name, len(members),
                                             min(n.cpus for n in members),
                                             parse_max_time(part.max_time)))
    else:
        shapes = [PartitionShape(spec.partition, len(computes),
                                 min((n.cpus for n in computes), default=1))] if computes else []
    return ClusterShape(users=users, partitions=tuple(shapes),
                        qos=tuple(QOS) if spec.accounting else (),
                        total_cpus=sum(n.cpus for n in computes))


class LoadRunner:
    """Submits one job mix to one cluster and collects its report."""

    def __init__(self, cluster: str, options: LoadOptions,
                 progress: ProgressFn | None = None,
                 stop: threading.Event | None = None, wait_timeout: float = 600.0) -> None:
        """Plan the mix now (bad options raise UserError before anything is submitted)."""
        self.cluster = cluster
        self.options = options
        self.cluster_spec = control.load_spec(cluster)
        self.shape = cluster_shape(self.cluster_spec)
        try:
            self.jobs = generate(self.shape, options)
        except ValueError as err:
            raise UserError(str(err)) from None
        self.progress = progress
        self.stop = stop or threading.Event()
        self.wait_timeout = wait_timeout
        self.name = f"vhpc-load-{secrets.token_hex(3)}"  # squeue/sacct select the run by it
        self.paths = ClusterPaths.of(cluster)
        self.state = LoadProgress(len(self.jobs))
        self.refusals: list[str] = []
        self._lock = threading.Lock()
        self._prefixes: dict[str, list[str]] = {}
        self.last_submit: float | None = None  # when sbatch last accepted a job
        self.lags: list[float] = []  # per submission: seconds behind its planned time
        self.seen: dict[str, JobRecord] = {}  # every job of the run squeue showed, last seen
        self._started = time.time()

    # -- Slurm on the host --------------------------------------------------------------

    def slurm(self, argv: list[str], timeout: float = 30.0) -> CommandResult:
        """A Slurm client on the host against this cluster, times as Unix seconds."""
        env = dict(client_env(self.paths.slurm_conf, os.environ), SLURM_TIME_FORMAT="%s")
        return run_command(argv, check=False, timeout=timeout, env=env)

    def queue(self) -> dict[str, JobRecord]:
        """This run's jobs slurmctld knows (live and ended within MinJobAge)."""
        result = self.slurm(["squeue", "-h", "-t", "all", "-n", self.name,
                             "-o", "%i|%P|%T|%V|%S|%e|%C"], timeout=20)
        return parse_records(result.stdout) if result.returncode == 0 else {}

    def accounting(self, since: float) -> dict[str, JobRecord]:
        """This run's jobs as sacct has them (empty without accounting)."""
        if not self.cluster_spec.accounting:
            return {}
        start = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(since - 60))
        result = self.slurm(["sacct", "-X", "-n", "-P", "--name", self.name, "-S", start,
                             "-E", "now", "-o", "JobIDRaw,Partition,State,Submit,Start,End,"
                             "AllocCPUS"], timeout=60)
        return parse_records(result.stdout) if result.returncode == 0 else {}

    # -- submitting -----------------------------------------------------------------------

    def _prefix(self, user: str) -> list[str]:
        with self._lock:
            if user not in self._prefixes:
                self._prefixes[user] = control.exec_argv(self.cluster, CONTROLLER_NAME,
                                                         ["sbatch"], user)
            return self._prefixes[user]

    def submit(self, job: JobRequest) -> None:
        """sbatch one job inside the controller as its user; count a refusal."""
        result = run_command([*self._prefix(job.user), *job.sbatch_args(self.name)],
                             check=False, timeout=60)
        with self._lock:
            self.lags.append(time.time() - self._started - job.at)
            if result.returncode == 0:
                self.state.submitted += 1
                self.last_submit = time.time()
            else:
                self.state.refused += 1
                lines = (result.stderr.strip() or result.stdout.strip()).splitlines()
                self.refusals.append(f"{job.describe()}: {lines[-1] if lines else '?'}")

    def _tick(self, started: float) -> None:
        """Poll the queue; jobs slurmctld forgot (MinJobAge) keep their last state seen."""
        seen = self.queue()
        with self._lock:
            self.seen.update(seen)
            states = Counter(r.state for r in self.seen.values())
            self.state.states = states
            self.state.elapsed = time.time() - started
        if self.progress is not None:
            self.progress(self.state)

    def run(self) -> LoadReport:
        """Submit the mix on its schedule, wait for every job to end, and report.

        Ctrl-C (or `stop` set) ends the submissions, cancels this run's jobs and returns
        the report so far (``interrupted``).
        """
        started = self._started = time.time()
        interrupted = False
        futures: list[Future[None]] = []
        pool = ThreadPoolExecutor(SUBMITTERS, thread_name_prefix="vhpc-load")
        next_poll = 0.0
        try:
            for job in self.jobs:
                while not self.stop.is_set():
                    now = time.time()
                    if now >= next_poll:
                        self._tick(started)
                        next_poll = time.time() + POLL
                    delay = started + job.at - time.time()
                    if delay <= 0:
                        break
                    self.stop.wait(min(delay, max(0.0, next_poll - time.time()), POLL))
                if self.stop.is_set():
                    break
                futures.append(pool.submit(self.submit, job))
            while not all(f.done() for f in futures):  # the last submissions, still shown
                self._tick(started)
                self.stop.wait(POLL)
            pool.shutdown(wait=True)
            interrupted = self.stop.is_set() or self._wait_all(started)
        except KeyboardInterrupt:
            interrupted = True
            self.stop.set()
            pool.shutdown(wait=True, cancel_futures=True)
        if interrupted:
            self.slurm(["scancel", "-n", self.name], timeout=30)
        return self.report(started, interrupted)

    def _wait_all(self, started: float) -> bool:
        """Poll until every submitted job ended; True if stopped or timed out first."""
        deadline = time.monotonic() + self.wait_timeout
        while not self.stop.is_set():
            self._tick(started)
            with self._lock:
                ended = sum(n for s, n in self.state.states.items() if s in TERMINAL)
                if ended >= self.state.submitted:
                    return False
            if time.monotonic() > deadline:
                return True
            self.stop.wait(POLL)
        return True

    def report(self, started: float, interrupted: bool) -> LoadReport:
        """The report: sacct's records (waiting briefly for slurmdbd), else squeue's."""
        self._tick(started)
        records = dict(self.seen)
        if self.cluster_spec.accounting:
            deadline = time.monotonic() + 30
            while True:
                booked = self.accounting(started)
                complete = all(r.state in TERMINAL for r in booked.values())
                if (len(booked) >= self.state.submitted and complete) or \
                        time.monotonic() > deadline:
                    break
                time.sleep(1.0)
            records.update(booked)
        return summarize(list(records.values()), self.shape, seed=self.options.seed,
                         requested=len(self.jobs), refusals=self.refusals, started=started,
                         interrupted=interrupted, last_submit=self.last_submit,
                         lags=self.lags)


def parse_records(text: str) -> dict[str, JobRecord]:
    """Parse `id|partition|state|submit|start|end|cpus` lines (times as Unix seconds)."""
    records = {}
    for line in text.splitlines():
        fields = line.strip().split("|")
        if len(fields) < 7 or not fields[0]:
            continue
        job_id, partition, state, submit, start, end, cpus = fields[:7]
        state = state.split()[0] if state.strip() else "UNKNOWN"  # "CANCELLED by 0"
        begun = _unix(start) if state != "PENDING" else None
        records[job_id] = JobRecord(
            job_id=job_id, partition=partition, state=state,
            submit=_unix(submit) or 0.0, start=begun,
            end=_unix(end) if state in TERMINAL else None,
            cpus=int(cpus) if cpus.isdigit() else 1)
    return records


def _unix(text: str) -> float | None:
    text = text.strip()
    return float(text) if text.isdigit() and int(text) > 0 else None


def run_load(cluster: str, options: LoadOptions, progress: ProgressFn | None = None,
             stop: threading.Event | None = None, wait_timeout: float = 600.0) -> LoadReport:
    """Run one job mix against a running cluster and return its report."""
    return LoadRunner(cluster, options, progress, stop, wait_timeout).run()
