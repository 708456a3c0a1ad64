"""The Python API: :class:`Cluster` boots, drives and tears down a vhpc cluster from Python.

It is a thin layer over what the CLI uses (``vhpc.control`` for the life cycle and node
commands, ``vhpc.client.ManagerClient`` for the manager's HTTP API): no second
implementation. Slurm is driven with Slurm's own programs (``sbatch`` inside the
controller node, ``scontrol``/``scancel`` from the host with the cluster's slurm.conf).

    from vhpc import Cluster
    with Cluster(nodes=2) as c:
        print(c.run("srun -N2 hostname", user="cluser").stdout)
        result = c.wait(c.sbatch("#!/bin/bash\\nsrun hostname\\n"))
        assert result.ok, result

Errors are :class:`vhpc.errors.VhpcError` subclasses whose message says what to do; an
error of the manager comes back as the class it raised (e.g. ``NoSuchNodeError``).
Documents are the models of :mod:`vhpc.models` (``Status``, ``NodeInfo``, ``Event``...).
"""

from __future__ import annotations

import itertools
import os
import re
import secrets
import shlex
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType

from vhpc import control
from vhpc.client import ManagerClient
from vhpc.errors import ClusterStateError, CommandError, UserError, VhpcError
from vhpc.models import (
    Event,
    Fault,
    Job,
    LogLine,
    MetricSeries,
    NodeInfo,
    Status,
    UserInfo,
)
from vhpc.runtime.hostops import run_command
from vhpc.services.jobs import derived_status_of, exit_code_of, reported_state
from vhpc.services.slurm_client import SlurmClient
from vhpc.spec import shares, sitefile
from vhpc.spec.load import CONTROLLER_NAME, ClusterOptions
from vhpc.spec.model import ClusterSpec
from vhpc.spec.paths import ClusterPaths
from vhpc.workloads.load import LoadOptions, LoadReport

# Job states after which a job never runs again (Slurm's JOB_STATE_BASE, terminal ones).
TERMINAL_STATES = frozenset({
    "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED",
    "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE", "REVOKED", "SPECIAL_EXIT",
})
_KEY_SPLIT = re.compile(r"\s+(?=[A-Za-z][\w:/]*=)")
_counter = itertools.count()


class JobNotFoundError(UserError):
    """slurmctld does not know the job (never submitted, or ended > MinJobAge ago)."""


class JobRefusedError(UserError):
    """sbatch refused the job at submission; the message is Slurm's (e.g. more nodes, CPUs
    or memory than the cluster has: "More processors requested than permitted")."""


class JobTimeoutError(VhpcError, TimeoutError):
    """A job did not reach a terminal state within the wait timeout."""


@dataclass(frozen=True)
class RunResult:
    """What a command run inside a node returned (like subprocess.CompletedProcess)."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    node: str
    user: str

    @property
    def command(self) -> str:
        """The command as a shell line (what ``bash -c`` ran, for a string command)."""
        if self.args[:2] == ["/bin/bash", "-c"] and len(self.args) == 3:
            return self.args[2]
        return shlex.join(self.args)

    @property
    def ok(self) -> bool:
        """True if the command exited 0."""
        return self.returncode == 0

    def check_returncode(self) -> None:
        """Raise CommandError if the command failed."""
        if self.returncode != 0:
            raise CommandError([self.command], self.returncode, self.stderr, self.stdout)


@dataclass(frozen=True)
class JobResult:
    """A finished Slurm job, from ``scontrol show job`` plus its output files."""

    job_id: int
    state: str
    exit_code: int
    signal: int = 0
    nodes: str = ""
    reason: str = ""
    stdout_path: Path | None = None
    stdout: str | None = None
    stderr_path: Path | None = None
    stderr: str | None = None
    info: dict[str, str] = field(default_factory=dict, repr=False)
    slurm_state: str = ""  # Slurm's own state when `state` differs (a step failed)
    step_exit_code: str = ""  # worst exit status of its steps (code:signal), if one failed

    @property
    def ok(self) -> bool:
        """True if the job COMPLETED with exit code 0 and none of its steps failed (a job
        whose script went on after a failed ``srun`` is FAILED, see ``slurm_state``)."""
        return self.state == "COMPLETED" and self.exit_code == 0 and self.signal == 0


def parse_scontrol_record(line: str) -> dict[str, str]:
    """Parse one ``scontrol show ... -o`` line (``Key=Value`` pairs) into a dict."""
    fields: dict[str, str] = {}
    for token in _KEY_SPLIT.split(line.strip()):
        key, sep, value = token.partition("=")
        if sep:
            fields[key] = value
    return fields


def job_result(job_id: int, info: dict[str, str], read_files: bool = True) -> JobResult:
    """Build a JobResult from parsed scontrol fields, reading the output files if visible."""
    code, _, sig = info.get("ExitCode", "0:0").partition(":")
    stdout_path = _path_or_none(info.get("StdOut"))
    stderr_path = _path_or_none(info.get("StdErr"))
    return JobResult(
        job_id=job_id,
        state=info.get("JobState", "UNKNOWN"),
        exit_code=int(code or 0),
        signal=int(sig or 0),
        nodes=info.get("NodeList", ""),
        reason=info.get("Reason", ""),
        stdout_path=stdout_path,
        stdout=_read(stdout_path) if read_files else None,
        stderr_path=stderr_path,
        stderr=_read(stderr_path) if read_files and stderr_path != stdout_path else None,
        info=info,
    )


def _path_or_none(value: str | None) -> Path | None:
    return Path(value) if value and value not in ("(null)", "/dev/null") else None


def _read(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text(errors="replace")
    except OSError:  # in a node-private directory (/tmp) or not written yet
        return None


def default_name() -> str:
    """A fresh cluster name for this process (valid, short, unlikely to clash)."""
    return f"py{os.getpid() % 100000}-{secrets.token_hex(2)}"


class Cluster:
    """A vhpc cluster seen from Python: boot it (or attach to one), run commands, submit jobs.

    ``Cluster(...)`` only describes the cluster; ``start()`` or ``with Cluster(...) as c``
    boots it and returns once every compute node is idle in Slurm. Leaving the ``with``
    block tears down a cluster this object booted, even when the block raised; a cluster
    attached with :meth:`attach` is left running.
    """

    def __init__(self, name: str | None = None, nodes: int | None = None,
                 memory: str | int | None = None, *, cpus: int | None = None,
                 cpuset: str | None = None, subnet: str | None = None,
                 overcommit: bool = False, partition: str | None = None,
                 max_nodes: int | None = None, options: ClusterOptions | None = None,
                 users: Sequence[str] = (), accounting: bool = True,
                 image: str | None = None,
                 file: str | os.PathLike[str] | None = None,
                 boot_timeout: float = 600.0,
                 progress: control.ProgressFn | None = None) -> None:
        """Describe a cluster; ``options`` (a full ClusterOptions) overrides the keywords.

        ``file`` is a cluster file (``vhpc up -f``, spec/sitefile.py); keywords given
        with it override the file. Without one: 2 nodes, memory 1G capped to the host.
        ``image`` names the nodes' root filesystem ("host" or a built one, e.g. "debian13").
        ``progress(step, done, total)`` is called as the boot goes; the steps are also
        logged (logger ``vhpc.control``, INFO).
        """
        given = {"nodes": nodes, "memory": memory, "cpus": cpus, "cpuset": cpuset,
                 "subnet": subnet, "overcommit": overcommit or None,
                 "partition": partition, "max_nodes": max_nodes, "image": image}
        self.options = options or (
            sitefile.merge(sitefile.read_site(file, name, default_name()), **given)
            if file is not None else sitefile.merge(
                ClusterOptions(name=name or default_name(), nodes=2), **given))
        if users or not accounting:  # `up --users alice:physics`, `up --no-accounting`
            self.options = replace(self.options, users=tuple(users) or self.options.users,
                                   accounting=accounting and self.options.accounting)
        self.boot_timeout = boot_timeout
        self.progress = progress
        self.owned = False  # True once this object booted the cluster (it tears it down)
        self._client: ManagerClient | None = None

    # -- life cycle -----------------------------------------------------------------

    @property
    def name(self) -> str:
        """The cluster's name (``vhpc -c NAME``)."""
        return self.options.name

    @classmethod
    def attach(cls, name: str) -> Cluster:
        """A handle on an already running cluster (restarting its manager if needed).

        Leaving a ``with`` block of an attached cluster does not tear it down.
        """
        cluster = cls(options=ClusterOptions(name=name))
        cluster._client = control.ensure_manager(name)
        return cluster

    def start(self) -> Cluster:
        """Boot the cluster; return when all compute nodes are idle (BootError rolls back)."""
        if self._client is not None:
            raise UserError(f"cluster {self.name!r} is already started by this object")
        control.up(self.options, self.progress, timeout=self.boot_timeout)
        self.owned = True
        try:
            self._client = control.ensure_manager(self.name)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Tear the cluster down and remove everything it made (also for attached ones)."""
        self._close_client()
        try:
            leftovers = control.down(self.name)
        except ClusterStateError:
            raise
        except VhpcError as err:  # the manager refused or failed: remove by the ledger
            warnings.warn(f"vhpc: 'down' of cluster {self.name!r} failed ({err}); removing "
                          "what its ledger owns instead", RuntimeWarning, stacklevel=2)
            leftovers = control.clean(self.name, force=True)
        self.owned = False
        if leftovers:
            raise VhpcError(f"cluster {self.name!r} stopped but could not remove: "
                            f"{'; '.join(leftovers)} (try 'vhpc -c {self.name} clean')")

    def close(self) -> None:
        """Drop the connection to the manager without touching the cluster."""
        self._close_client()

    def _close_client(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> Cluster:
        if self._client is None:
            self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if not self.owned:
            self.close()
            return
        try:
            self.stop()
        except Exception as err:
            if exc is None:
                raise
            exc.add_note(f"vhpc: tearing down cluster {self.name!r} also failed: {err}")

    def __repr__(self) -> str:
        state = "owned" if self.owned else ("attached" if self._client else "not started")
        return f"<vhpc.Cluster {self.name!r} {state}>"

    # -- facts ----------------------------------------------------------------------

    @property
    def client(self) -> ManagerClient:
        """The manager's API client (the same the CLI uses)."""
        if self._client is None:
            raise UserError(f"cluster {self.name!r} is not started: use 'with Cluster(...)' "
                            "or Cluster.start(), or Cluster.attach(name) for a running one")
        return self._client

    @property
    def spec(self) -> ClusterSpec:
        """The running cluster's description (nodes, subnet, user), read afresh."""
        return control.load_spec(self.name)

    @property
    def paths(self) -> ClusterPaths:
        """Where the cluster keeps its state on the host."""
        return ClusterPaths.of(self.name)

    @property
    def user(self) -> str:
        """The cluster's unprivileged user (``cluser``)."""
        return self.spec.user

    @property
    def home(self) -> Path:
        """The user's home: shared by host and nodes at this same path."""
        return self.paths.home / self.spec.user

    @property
    def nodes(self) -> list[str]:
        """Names of the compute nodes (from the live status: includes added nodes)."""
        return [n.name for n in self.status().nodes if n.role == "compute"]

    def env(self) -> dict[str, str]:
        """Variables that point the host's sbatch/squeue/sinfo/scontrol at this cluster."""
        return {"SLURM_CONF": str(self.paths.slurm_conf), "VHPC_CLUSTER": self.name}

    def status(self) -> Status:
        """The status document (phase, nodes with usage and Slurm state, jobs)."""
        return self.client.status()

    def events(self, since: float = 0.0) -> list[Event]:
        """Cluster events (node added, daemon restarted, OOM kill...) since a unix time,
        newest first; ``event.kind`` says which."""
        return self.client.events(since)

    # -- commands and jobs ----------------------------------------------------------

    def run(self, command: str | Sequence[str], node: str = CONTROLLER_NAME,
            user: str | None = None, timeout: float = 120.0, check: bool = False,
            input: str | None = None) -> RunResult:
        """Run a command inside a node (a string goes through ``bash -c``); root by default.

        With ``check=True`` a non-zero exit raises CommandError; a timeout always does.
        """
        argv = ["/bin/bash", "-c", command] if isinstance(command, str) else list(command)
        full = control.exec_argv(self.name, node, argv, user)
        try:
            out = run_command(full, input=input, timeout=timeout, check=False)
        except CommandError as err:  # timed out: name the user's command, not nsenter
            line = command if isinstance(command, str) else shlex.join(argv)
            raise CommandError([line], err.returncode,
                               f"timed out after {timeout:.0f}s in node {node!r}") from None
        result = RunResult(argv, out.returncode, out.stdout, out.stderr, node, user or "root")
        if check:
            result.check_returncode()
        return result

    def slurm(self, *argv: str, check: bool = True, timeout: float = 30.0) -> RunResult:
        """Run a Slurm client (scontrol, squeue, sinfo, scancel...) on the host, as root."""
        out = SlurmClient(self.paths.slurm_conf).run(list(argv), check=False, timeout=timeout)
        result = RunResult(list(argv), out.returncode, out.stdout, out.stderr, "host", "root")
        if check:
            result.check_returncode()
        return result

    def sbatch(self, script: str | Path, user: str | None = None,
               args: Sequence[str] = (), chdir: str | Path | None = None) -> int:
        """Submit a batch script (text or a host path) and return the job id.

        The script is written into the shared home, owned by ``user`` (default: the
        cluster user), and submitted with ``sbatch --parsable`` inside the controller;
        output goes to ``chdir`` (default: the user's home), e.g. ``slurm-<id>.out``.
        A script without ``#!`` gets ``#!/bin/bash``.
        """
        who = user or self.spec.user
        text = script.read_text() if isinstance(script, Path) else script
        if not text.startswith("#!"):
            text = "#!/bin/bash\n" + text
        path = self._write_job_script(text, who)
        workdir = str(chdir or path.parent.parent)  # the user's home
        self._warn_invisible(workdir)
        result = self.run(["sbatch", "--parsable", f"--chdir={workdir}", *args, str(path)],
                          user=who, timeout=60)
        if not result.ok:
            detail = (result.stderr.strip() or result.stdout.strip()).splitlines()
            raise JobRefusedError(
                f"sbatch refused the job: {detail[-1] if detail else 'no output'}"
                f" (script {path}, args {shlex.join(args) or 'none'})",
                fix="ask for at most the nodes, CPUs and memory the cluster has "
                    "('vhpc status'), or add nodes (Cluster.add_node)")
        return int(result.stdout.strip().split(";")[0])

    def _warn_invisible(self, directory: str) -> None:
        """Warn (with the fix) when the nodes do not see `directory` at that path."""
        message = shares.invisible_dir_warning(
            os.path.abspath(directory), self.spec.shares, str(self.paths.home), self.name)
        if message is not None:
            warnings.warn(message, stacklevel=3)

    def _write_job_script(self, text: str, user: str) -> Path:
        login = control.login_of(self.spec, user)
        uid, gid = (login.uid, login.gid) if login else (0, 0)
        owner = login.uid if login else self.spec.user_uid
        jobs = (Path(login.home) if login else self.home) / ".vhpc-jobs"  # the user's home
        if not jobs.exists():
            jobs.mkdir(mode=0o755)
            os.chown(jobs, owner, owner)
        path = jobs / f"job-{int(time.time())}-{os.getpid()}-{next(_counter)}.sh"
        path.write_text(text)
        os.chown(path, uid, gid)
        path.chmod(0o755)
        return path

    def users(self) -> list[UserInfo]:
        """The cluster's users (the default one first), their accounts, uids and homes."""
        return self.client.users().users

    def add_user(self, name: str, account: str = "default",
                 new_account: bool = False) -> UserInfo:
        """Add a cluster user in a Slurm account (``new_account``: make the account)."""
        return self.client.add_user(name, account, new_account)

    def job(self, job: int) -> dict[str, str]:
        """``scontrol show job`` of one job as a dict (JobState, ExitCode, NodeList...)."""
        result = self.slurm("scontrol", "show", "job", "-o", str(job), check=False)
        if result.returncode != 0 or not result.stdout.strip():
            raise JobNotFoundError(
                f"job {job} is unknown to slurmctld of cluster {self.name!r}: it was never "
                "submitted here, or it ended more than MinJobAge (300 s) ago "
                f"({result.stderr.strip() or 'no output'})")
        return parse_scontrol_record(result.stdout.splitlines()[0])

    def wait(self, job: int, timeout: float = 300.0, poll: float = 0.5) -> JobResult:
        """Wait until the job ends; return its state, exit code and output.

        Raises JobTimeoutError if it is still pending or running after ``timeout`` s.
        """
        deadline = time.monotonic() + timeout
        while True:
            info = self.job(job)
            state = info.get("JobState", "UNKNOWN")
            if state in TERMINAL_STATES:
                return self._with_steps(job_result(job, info))
            if time.monotonic() > deadline:
                raise JobTimeoutError(
                    f"job {job} is still {state} after {timeout:.0f}s (reason: "
                    f"{info.get('Reason', '?')}): raise the timeout, or see 'squeue' and "
                    f"'vhpc -c {self.name} status'")
            time.sleep(poll)

    def _with_steps(self, result: JobResult) -> JobResult:
        """A COMPLETED job one of whose steps failed (e.g. srun could not launch on a
        node) becomes FAILED: slurmctld's derived exit code is the worst of its steps."""
        if result.state != "COMPLETED":
            return result
        out = self.slurm("squeue", "--json", "--states=all", "-j", str(result.job_id),
                         check=False, timeout=60)
        derived = derived_status_of(out.stdout, result.job_id) if out.ok else 0
        if not derived:
            return result
        return replace(result, state=reported_state(result.state, True),
                       slurm_state=result.state, step_exit_code=exit_code_of(derived),
                       reason=f"a step failed (exit status {exit_code_of(derived)}; "
                              f"'sacct -j {result.job_id}' lists the steps)")

    def cancel(self, job: int) -> None:
        """Cancel a job (scancel)."""
        self.slurm("scancel", str(job))

    def jobs(self, finished: bool = False, since: float = 0.0,
             limit: int = 500) -> list[Job]:
        """Jobs, newest first: pending and running ones; with ``finished``, ended ones too
        (with accounting every one since ``since``, a Unix time, with its ``max_rss``)."""
        return self.client.jobs(finished, since, limit).jobs

    def load(self, count: int | None = None, *, rate: float | None = None,
             duration: float | None = None, seed: int = 0, mean_runtime: float = 1.0,
             distribution: str = "exponential", fail_rate: float = 0.0,
             oom_rate: float = 0.0, max_size: int | None = None,
             timeout: float = 600.0) -> LoadReport:
        """Submit a reproducible job mix (``vhpc load``), wait for it, return its report
        (``report.total.completed``, ``.wait_p90``, ``.utilisation``, ``.partitions``)."""
        from vhpc.load_runner import run_load

        self.client  # noqa: B018 -- refuses a cluster this object has not started
        options = LoadOptions(seed=seed, rate=rate, count=count, duration=duration,
                              mean_runtime=mean_runtime, distribution=distribution,
                              fail_rate=fail_rate, oom_rate=oom_rate, max_size=max_size)
        return run_load(self.name, options, wait_timeout=timeout)

    def rest_url(self) -> str:
        """The base URL of the cluster's Slurm REST API (slurmrestd), e.g.
        ``http://10.201.0.2:6820``; requests need :meth:`slurm_token`."""
        from vhpc.rest import rest_url

        return rest_url(self.name)

    def slurm_token(self, user: str | None = None, lifespan: int = 86400) -> str:
        """A JWT for slurmrestd (headers ``X-SLURM-USER-NAME``, ``X-SLURM-USER-TOKEN``)."""
        from vhpc.rest import slurm_token

        return slurm_token(self.name, user, lifespan)

    # -- nodes, logs and metrics (the manager's API) ----------------------------------

    def add_node(self, name: str | None = None, *, memory: str | None = None,
                 cpus: int | None = None, cpuset: str | None = None,
                 features: Sequence[str] = (), wait: bool = True,
                 gpus: str | int = "") -> NodeInfo:
        """Add a compute node to the running cluster; return its record once it is idle.

        ``name`` defaults to the next free ``computeN``; the options are those of
        ``vhpc node add`` (``memory="250M"``, ``cpus=1``, ``cpuset="0"``, ``features=[...]``,
        ``gpus="a100:2"``).
        """
        added = self.client.add_nodes([name] if name else [], 0, memory,
                                      cpus, cpuset, list(features), wait, gpus=str(gpus))
        if len(added) != 1:
            raise VhpcError(f"adding a node to cluster {self.name!r} returned "
                            f"{len(added)} records")
        return added[0]

    def remove_node(self, name: str, drain: bool = False) -> None:
        """Remove a compute node (``drain=True`` waits for its jobs first)."""
        leftovers = self.client.remove_nodes([name], drain)
        if leftovers:
            raise VhpcError(f"node {name} removed but could not remove: "
                            f"{'; '.join(leftovers)} (try 'vhpc -c {self.name} clean')")

    def fault(self, kind: str, nodes: str | Sequence[str] = (), *,
              peers: Sequence[str] = (), percent: float | None = None, rate: str = "",
              delay_ms: int | None = None, daemon: str = "") -> list[Fault]:
        """Inject a fault: ``fault("partition", "compute1")``, ``fault("loss", ["compute2"],
        percent=30)``, ``fault("rate", "compute0", rate="10mbit")``, ``fault("freeze",
        "compute3")``, ``fault("kill", daemon="slurmctld@slurm")``; the faults made (one per
        node for node faults). Undo them with :meth:`clear_faults`."""
        names = [nodes] if isinstance(nodes, str) else list(nodes)
        return self.client.add_fault(kind, names, list(peers), percent, rate, delay_ms, daemon)

    def faults(self) -> list[Fault]:
        """The active faults, oldest first."""
        return self.client.list_faults()

    def clear_faults(self, fault_id: str | None = None, kind: str | None = None,
                     nodes: Sequence[str] = ()) -> list[Fault]:
        """Undo one fault (by id), those of a kind and/or on some nodes, or every one."""
        return self.client.clear_faults(fault_id, kind, list(nodes))

    def logs(self, grep: str | None = None, node: str | None = None,
             service: str | None = None, level: str | None = None,
             since: float | None = None, limit: int = 200) -> list[LogLine]:
        """Log lines of the cluster's daemons, newest first (full-text ``grep``)."""
        return self.client.logs(grep, node, service, level, since, limit)

    def metrics(self, node: str | None = None, metric: str = "memory",
                since: float = 300.0) -> list[MetricSeries]:
        """Time series of one metric (memory, cpu, rx, tx, procs...) per node."""
        return self.client.metrics(metric, since, node)
