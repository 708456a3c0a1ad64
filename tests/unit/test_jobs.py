"""Job records from squeue --json and sacct, merged; `vhpc jobs` and GET /api/v1/jobs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vhpc.cli.job_cmds import elapsed_text, job_row, rss_text
from vhpc.services.jobs import (
    SACCT_FIELDS,
    JobRecord,
    exit_code_of,
    merge,
    parse_rss,
    parse_sacct,
    parse_squeue_json,
    sacct_argv,
    select,
)

USERS = {"1879048192": "cluser", "1879048193": "alice"}
NOW = 1_800_000_100.0


def squeue_job(job_id: int, state: str, uid: int, **extra: object) -> dict[str, object]:
    """A job object as Slurm 22.05's `squeue --json` prints it (the fields vhpc reads)."""
    return {"job_id": job_id, "name": f"j{job_id}", "user_id": uid, "user_name": None,
            "account": "physics", "partition": "vhpc", "job_state": state,
            "nodes": "compute0", "submit_time": 1_800_000_000, "start_time": 1_800_000_010,
            "end_time": 0, "exit_code": 0, **extra}


def test_squeue_json_gives_live_and_recent_jobs_with_cluster_user_names() -> None:
    text = json.dumps({"jobs": [
        squeue_job(7, "RUNNING", 1879048193, end_time=1_800_086_410),  # end = time limit
        squeue_job(6, "FAILED", 1879048192, end_time=1_800_000_013, exit_code=768),
        squeue_job(5, "PENDING", 0, start_time=0, nodes="", user_name="root",
                   account=None),
    ]})
    running, failed, pending = parse_squeue_json(text, USERS, NOW)
    assert (running.id, running.user, running.state, running.elapsed, running.end) == (
        "7", "alice", "RUNNING", 90, None)
    assert running.live and not failed.live and pending.live
    assert (failed.user, failed.exit_code, failed.elapsed, failed.end) == (
        "cluser", "3:0", 3, 1_800_000_013.0)
    assert (pending.user, pending.account, pending.elapsed, pending.start, pending.nodes) == (
        "root", "", 0, None, "")
    assert parse_squeue_json('{"jobs": []}', USERS, NOW) == []


def test_exit_codes_are_code_colon_signal() -> None:
    assert [exit_code_of(s) for s in (0, 768, 9, 256 + 15)] == ["0:0", "3:0", "0:9", "1:15"]


def test_maxrss_in_bytes() -> None:
    assert parse_rss("81236K") == 81236 * 1024
    assert parse_rss("1.5M") == 3 * 2**19
    assert parse_rss("2048") == 2048
    assert parse_rss("") is None and parse_rss("junk") is None


def sacct_line(**cells: str) -> str:
    row = dict.fromkeys(SACCT_FIELDS, "")
    row.update(cells)
    return "|".join(row[f] for f in SACCT_FIELDS)


def test_sacct_gives_one_record_per_job_with_its_largest_step_rss() -> None:
    text = "\n".join([
        sacct_line(JobIDRaw="12", JobName="big", UID="1879048193", User="nobody",
                   Account="physics", Partition="vhpc", State="OUT_OF_MEMORY",
                   NodeList="compute1", ElapsedRaw="4", ExitCode="0:125",
                   Submit="1800000000", Start="1800000001", End="1800000005"),
        sacct_line(JobIDRaw="12.batch", MaxRSS="81236K", State="OUT_OF_MEMORY"),
        sacct_line(JobIDRaw="12.extern", MaxRSS="120K", State="COMPLETED"),
        sacct_line(JobIDRaw="13", JobName="gone", UID="0", User="root", State="CANCELLED by 0",
                   NodeList="None assigned", ElapsedRaw="0", ExitCode="0:0",
                   Submit="1800000002", Start="Unknown", End="1800000003"),
        "a|torn|line",
    ])
    big, gone = parse_sacct(text, USERS)
    assert big == JobRecord(
        id="12", name="big", user="alice", account="physics", partition="vhpc",
        state="OUT_OF_MEMORY", nodes="compute1", elapsed=4, exit_code="0:125",
        max_rss=81236 * 1024, submit=1_800_000_000.0, start=1_800_000_001.0,
        end=1_800_000_005.0, source="sacct")
    assert (gone.user, gone.state, gone.nodes, gone.start, gone.max_rss) == (
        "root", "CANCELLED", "", None, None)


def test_merge_keeps_slurmctld_while_running_and_accounting_after() -> None:
    live = [JobRecord("3", state="RUNNING"), JobRecord("2", state="COMPLETED")]
    done = [JobRecord("3", state="RUNNING", source="sacct"),
            JobRecord("2", state="COMPLETED", max_rss=1, source="sacct"),
            JobRecord("1", state="FAILED", source="sacct"),
            JobRecord("10", state="COMPLETED", source="sacct")]
    merged = merge(live, done)
    assert [(j.id, j.source) for j in merged] == [
        ("10", "sacct"), ("3", "squeue"), ("2", "sacct"), ("1", "sacct")]


def test_selection_keeps_live_jobs_and_the_finished_since_a_time() -> None:
    jobs = [JobRecord("4", state="RUNNING", submit=50.0),
            JobRecord("3", state="COMPLETED", end=120.0),
            JobRecord("2", state="FAILED", end=90.0),
            JobRecord("1", state="CANCELLED", submit=95.0)]  # never started: no end
    assert [j.id for j in select(jobs, False, 0.0, 10)] == ["4"]
    assert [j.id for j in select(jobs, True, 0.0, 10)] == ["4", "3", "2", "1"]
    assert [j.id for j in select(jobs, True, 100.0, 10)] == ["4", "3"]
    assert [j.id for j in select(jobs, True, 93.0, 2)] == ["4", "3"]


def test_sacct_asks_every_user_parsable_since_a_time() -> None:
    argv = sacct_argv(0.0)
    assert argv[:5] == ["sacct", "-a", "-n", "-P", "--noconvert"]
    assert argv[-1] == ",".join(SACCT_FIELDS)
    assert argv[argv.index("-E") + 1] == "now"


def test_cli_rows_read_like_sacct() -> None:
    assert elapsed_text(3725) == "01:02:05" and elapsed_text(90061) == "1-01:01:01"
    assert rss_text(None) == "-" and rss_text(80 << 20) == "80.0M"
    row = job_row({"id": "4", "name": "x", "user": "alice", "account": "", "partition": "p",
                   "state": "COMPLETED", "elapsed": 3, "exit_code": "0:0", "max_rss": None,
                   "end": None, "nodes": ""})
    assert row == ("4", "x", "alice", "-", "p", "COMPLETED", "00:00:03", "0:0", "-", "-",
                   "-")


def test_jobs_route_and_client_parse_the_job_list() -> None:
    from tests.unit.fake_manager_api import FakeManagerAPI, make_app, manager_client

    api = FakeManagerAPI()
    client = manager_client(make_app(api))
    live = client.jobs()
    assert [j.id for j in live.jobs] == ["2"] and live.accounting
    done = client.jobs(finished=True, since=5.0, limit=10)
    assert [(j.id, j.state, j.max_rss) for j in done.jobs] == [
        ("2", "RUNNING", None), ("1", "COMPLETED", 80 << 20)]
    assert api.calls[-1] == ("jobs", True, 5.0, 10)


def test_vhpc_jobs_prints_a_table_or_json(monkeypatch: pytest.MonkeyPatch,
                                          tmp_path: Path) -> None:
    from tests.unit.cli_fakes import install, run_vhpc
    from vhpc.models import Job, JobList

    fake = install(monkeypatch, tmp_path)
    docs = {False: JobList(jobs=[], accounting=False),
            True: JobList(jobs=[Job(id="9", name="big", user="alice", account="physics",
                                    partition="vhpc", state="OUT_OF_MEMORY", elapsed=4,
                                    exit_code="0:125", max_rss=80 << 20, end=NOW)],
                          accounting=True)}
    monkeypatch.setattr(fake, "jobs", lambda finished, since, limit: docs[finished],
                        raising=False)
    empty = run_vhpc("-c", "hbt", "jobs")
    assert (empty.code, empty.stdout) == (0, "")
    assert "no jobs pending or running (--all: finished too)" in empty.stderr
    table = run_vhpc("-c", "hbt", "jobs", "--all")
    assert table.code == 0 and table.stderr == ""
    header, row = table.stdout.splitlines()
    assert header.split() == ["JOBID", "NAME", "USER", "ACCOUNT", "PARTITION", "STATE",
                              "ELAPSED", "EXIT", "MAXRSS", "END", "NODES"]
    assert row.split()[:9] == ["9", "big", "alice", "physics", "vhpc", "OUT_OF_MEMORY",
                               "00:00:04", "0:125", "80.0M"]
    doc = json.loads(run_vhpc("-c", "hbt", "jobs", "--all", "--json").stdout)
    assert doc["accounting"] and doc["jobs"][0]["max_rss"] == 80 << 20
