"""Slurm jobs as records: live and recent ones from slurmctld, finished ones from accounting.

`squeue --states=all --json` lists what slurmctld holds: pending and running jobs, and
finished ones for `MinJobAge` seconds. With accounting (slurmdbd), `sacct` adds every
finished job since a time, with its `MaxRSS` (the largest of its steps). Users are named
from the cluster's passwd: the host's clients know only the host's users.

A job whose batch script exits 0 is COMPLETED in Slurm even when one of its steps failed
(`srun` could not launch on a node, a rank was killed) and the script went on. vhpc
reports such a job as FAILED (`state`), keeping Slurm's own state in `slurm_state` and
naming the failed steps (`failed_steps`, from sacct) or their worst exit status
(`step_exit_code`, slurmctld's derived exit code): see `reported_state`.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, replace
from typing import Any

from vhpc.runtime.hostops import run_command
from vhpc.services.host_clients import client_env
from vhpc.services.slurm_client import SlurmClient, user_names

#: sacct columns, in order (-P: '|' separated; SLURM_TIME_FORMAT=%s: Unix times)
SACCT_FIELDS = ("JobIDRaw", "JobName", "UID", "User", "Account", "Partition", "State",
                "NodeList", "ElapsedRaw", "ExitCode", "MaxRSS", "Submit", "Start", "End")
LIVE_STATES = frozenset({"PENDING", "RUNNING", "SUSPENDED", "COMPLETING", "CONFIGURING",
                         "REQUEUED", "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED"})
log = logging.getLogger(__name__)
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


@dataclass(frozen=True)
class JobRecord:
    """One job: who ran what where, how it ended, how long it took and its peak memory."""

    id: str
    name: str = ""
    user: str = ""
    account: str = ""
    partition: str = ""
    state: str = ""
    nodes: str = ""
    elapsed: int = 0  # seconds run (so far, for a running job)
    exit_code: str = ""  # Slurm's code:signal, e.g. 0:0, 3:0, 0:9
    max_rss: int | None = None  # bytes, largest step (accounting only)
    submit: float | None = None  # Unix times
    start: float | None = None
    end: float | None = None
    source: str = "squeue"  # squeue (slurmctld) or sacct (accounting)
    slurm_state: str = ""  # Slurm's own state, when `state` says otherwise (reported_state)
    step_exit_code: str = ""  # the worst exit status of the job's steps (code:signal)
    failed_steps: tuple[str, ...] = ()  # e.g. '7.0 CANCELLED 0:105' (accounting only)

    @property
    def live(self) -> bool:
        """Pending or running (not yet finished)."""
        return self.state in LIVE_STATES

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


#: Steps that are not the user's: the batch script itself (its status is the job's) and
#: the extern step (PrologFlags=contain).
_OWN_STEPS = frozenset({"batch", "extern"})


def reported_state(state: str, step_failed: bool) -> str:
    """The state vhpc reports: Slurm's, except that a COMPLETED job with a failed step
    (a partial launch failure, a killed rank the script did not pass on) is FAILED."""
    return "FAILED" if state == "COMPLETED" and step_failed else state


def step_failed(state: str, exit_code: str) -> bool:
    """A finished step failed: any state but COMPLETED (live ones excepted), or an exit
    status other than 0:0."""
    if state in LIVE_STATES or not state:
        return False
    return state != "COMPLETED" or exit_code not in ("", "0:0")


def derived_status(value: Any) -> int:
    """slurmctld's derived exit code of a job (the worst of its steps) as a wait status:
    an int in Slurm 22.05's JSON, an object (status, return_code, signal) in later ones."""
    if isinstance(value, dict):
        code = value.get("return_code", {})
        sig = value.get("signal", {}).get("id", {})
        number = int(code.get("number", 0) or 0) if isinstance(code, dict) else int(code or 0)
        signal = int(sig.get("number", 0) or 0) if isinstance(sig, dict) else int(sig or 0)
        return (number & 0xFF) << 8 | (signal & 0x7F)
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def derived_status_of(text: str, job_id: int | str) -> int:
    """The derived exit code of one job in `squeue --json` output (0 if it is not there)."""
    try:
        jobs = json.loads(text).get("jobs", [])
    except (ValueError, AttributeError):
        return 0
    for job in jobs:
        if str(job.get("job_id")) == str(job_id):
            return derived_status(job.get("derived_exit_code"))
    return 0


def _state_name(value: Any) -> str:
    """A job state from squeue's JSON: a string (22.05) or a list of flags (later)."""
    if isinstance(value, list):
        return str(value[0]) if value else ""
    return str(value or "")


def exit_code_of(status: int) -> str:
    """Slurm's `code:signal` from a wait status as slurmctld keeps it."""
    return f"{(status >> 8) & 0xFF}:{status & 0x7F}"


def _time(value: Any) -> float | None:
    """A Unix time, or None for Slurm's 0/Unknown/None."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def parse_squeue_json(text: str, users: dict[str, str], now: float) -> list[JobRecord]:
    """Records from `squeue --json` (Slurm 22.05's openapi v0.0.38 job objects)."""
    out = []
    for job in json.loads(text).get("jobs", []):
        uid = str(job.get("user_id", ""))
        start, end = _time(job.get("start_time")), _time(job.get("end_time"))
        state = _state_name(job.get("job_state"))
        running_until = now if state in LIVE_STATES else (end or now)
        derived = derived_status(job.get("derived_exit_code"))
        shown = reported_state(state, derived != 0)
        out.append(JobRecord(
            id=str(job.get("job_id", "")), name=str(job.get("name", "")),
            user=users.get(uid) or str(job.get("user_name") or uid),
            account=str(job.get("account") or ""), partition=str(job.get("partition", "")),
            state=shown, nodes=str(job.get("nodes") or ""),
            elapsed=max(0, int(running_until - start)) if start else 0,
            exit_code=exit_code_of(derived_status(job.get("exit_code"))),
            submit=_time(job.get("submit_time")), start=start,
            end=end if state not in LIVE_STATES else None,
            slurm_state=state if shown != state else "",
            step_exit_code=exit_code_of(derived) if derived else ""))
    return out


def parse_rss(text: str) -> int | None:
    """sacct's MaxRSS ('81236K', '1.50M', '') in bytes."""
    text = text.strip()
    if not text:
        return None
    unit = text[-1].upper() if text[-1].isalpha() else ""
    try:
        return int(float(text[:-1] if unit else text) * _UNITS[unit])
    except (KeyError, ValueError):
        return None


def parse_sacct(text: str, users: dict[str, str]) -> list[JobRecord]:
    """Records from `sacct -P -o SACCT_FIELDS`: one per job, MaxRSS the largest step's."""
    jobs: dict[str, JobRecord] = {}
    rss: dict[str, int] = {}
    failed: dict[str, list[str]] = {}
    for line in text.splitlines():
        cells = line.split("|")
        if len(cells) != len(SACCT_FIELDS):
            continue
        row = dict(zip(SACCT_FIELDS, cells, strict=True))
        job_id, _, step = row["JobIDRaw"].partition(".")
        step_rss = parse_rss(row["MaxRSS"])
        if step_rss is not None:
            rss[job_id] = max(rss.get(job_id, 0), step_rss)
        if step:
            state = row["State"].split(" ")[0]
            if step not in _OWN_STEPS and step_failed(state, row["ExitCode"]):
                failed.setdefault(job_id, []).append(
                    f"{row['JobIDRaw']} {state} {row['ExitCode']}")
            continue
        elapsed = row["ElapsedRaw"]
        jobs[job_id] = JobRecord(
            id=job_id, name=row["JobName"],
            user=users.get(row["UID"]) or row["User"] or row["UID"],
            account=row["Account"], partition=row["Partition"],
            state=row["State"].split(" ")[0],  # 'CANCELLED by 0'
            nodes="" if row["NodeList"] == "None assigned" else row["NodeList"],
            elapsed=int(elapsed) if elapsed.isdigit() else 0, exit_code=row["ExitCode"],
            submit=_time(row["Submit"]), start=_time(row["Start"]), end=_time(row["End"]),
            source="sacct")
    return [_with_steps(j, rss.get(j.id), tuple(failed.get(j.id, ())))
            for j in jobs.values()]


def _with_steps(job: JobRecord, max_rss: int | None, failed: tuple[str, ...]) -> JobRecord:
    """A sacct job record completed from its steps: peak memory and failed steps."""
    shown = reported_state(job.state, bool(failed))
    worst = max((f.rsplit(" ", 1)[1] for f in failed), key=_status_order, default="")
    return replace(job, max_rss=max_rss, failed_steps=failed, state=shown,
                   slurm_state=job.state if shown != job.state else "",
                   step_exit_code=worst)


def merge(live: list[JobRecord], finished: list[JobRecord]) -> list[JobRecord]:
    """One record per job, newest first: slurmctld's while the job runs, accounting's after."""
    by_id = {j.id: j for j in live}
    for job in finished:
        if job.id not in by_id or not by_id[job.id].live:
            by_id[job.id] = job
    return sorted(by_id.values(), key=_job_order, reverse=True)


def _status_order(code: str) -> tuple[int, int]:
    """'3:0' -> (3, 0), for picking the worst of several exit statuses."""
    head, _, tail = code.partition(":")
    return (int(head) if head.isdigit() else 0, int(tail) if tail.isdigit() else 0)


def _job_order(job: JobRecord) -> tuple[int, str]:
    head = job.id.split("_")[0]
    return (int(head) if head.isdigit() else 0, job.id)


def sacct_argv(since: float) -> list[str]:
    """sacct for every user's jobs (and steps) since a Unix time."""
    start = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(max(since, 86400.0)))
    return ["sacct", "-a", "-n", "-P", "--noconvert", "-S", start, "-E", "now",
            "-o", ",".join(SACCT_FIELDS)]


def read_jobs(client: SlurmClient, accounting: bool, finished: bool = False,
              since: float = 0.0, limit: int = 500) -> list[JobRecord]:
    """The cluster's jobs, newest first: live ones; with `finished`, ended ones too
    (those slurmctld still holds, and with `accounting` every one since `since`)."""
    users = user_names(client.passwd)
    env = dict(client_env(client.conf, os.environ), SLURM_TIME_FORMAT="%s")
    env.pop("SLURM_JWT", None)  # munge as root, whatever the caller's shell holds
    result = run_command(["squeue", "--states=all", "--json"], check=False, timeout=30,
                         env=env)
    live = parse_squeue_json(result.stdout, users, time.time()) if result.returncode == 0 \
        and result.stdout.strip() else []
    done: list[JobRecord] = []
    if finished and accounting:
        result = run_command(sacct_argv(since), check=False, timeout=60, env=env)
        if result.returncode == 0:
            done = parse_sacct(result.stdout, users)
        else:  # slurmdbd down or restarting: the live part still answers
            log.warning("sacct failed (exit %d): %s", result.returncode,
                        result.stderr.strip()[-200:])
    return select(merge(live, done), finished, since, limit)


def select(jobs: list[JobRecord], finished: bool, since: float,
           limit: int) -> list[JobRecord]:
    """Live jobs; with `finished`, also those that ended at `since` or later; at most
    `limit`, in the given order."""
    if not finished:
        return [j for j in jobs if j.live][:limit]
    return [j for j in jobs if j.live or (j.end or j.submit or 0.0) >= since][:limit]
