"""A job whose step failed (srun could not launch on a node) is not reported COMPLETED:
sacct's failed steps and slurmctld's derived exit code make it FAILED (issue 12)."""

from __future__ import annotations

import json

from vhpc.services.jobs import (
    SACCT_FIELDS,
    derived_status,
    derived_status_of,
    parse_sacct,
    parse_squeue_json,
    reported_state,
    step_failed,
)

USERS = {"1879048192": "cluser"}


def sacct_line(**cells: str) -> str:
    row = dict.fromkeys(SACCT_FIELDS, "")
    row.update(cells)
    return "|".join(row[f] for f in SACCT_FIELDS)


def job_lines(job: str, *steps: tuple[str, str, str]) -> list[str]:
    """A COMPLETED 0:0 job (its batch script exited 0) and its steps (id, state, exit)."""
    return [sacct_line(JobIDRaw=job, JobName="partial", UID="1879048192", State="COMPLETED",
                       ExitCode="0:0", ElapsedRaw="12"),
            sacct_line(JobIDRaw=f"{job}.batch", State="COMPLETED", ExitCode="0:0"),
            *(sacct_line(JobIDRaw=f"{job}.{s}", State=state, ExitCode=code)
              for s, state, code in steps)]


def test_a_partial_launch_failure_is_reported_failed_with_its_steps() -> None:
    # as Slurm 22.05 recorded it: srun's launch failed on compute15 ('Communication
    # connection failure'), the step was aborted, the script went on and exited 0
    text = "\n".join(job_lines("111", ("0", "CANCELLED", "0:105"), ("1", "COMPLETED", "0:0")))
    (job,) = parse_sacct(text, USERS)
    assert (job.state, job.slurm_state, job.exit_code) == ("FAILED", "COMPLETED", "0:0")
    assert job.failed_steps == ("111.0 CANCELLED 0:105",)
    assert job.step_exit_code == "0:105"


def test_a_job_whose_steps_all_completed_stays_completed() -> None:
    text = "\n".join(job_lines("5", ("0", "COMPLETED", "0:0"), ("extern", "CANCELLED", "0:9")))
    (job,) = parse_sacct(text, USERS)
    assert (job.state, job.slurm_state, job.failed_steps, job.step_exit_code) == (
        "COMPLETED", "", (), "")


def test_the_worst_failed_step_names_the_exit_status() -> None:
    text = "\n".join(job_lines("6", ("0", "FAILED", "1:0"), ("1", "FAILED", "3:0"),
                               ("2", "OUT_OF_MEMORY", "0:125")))
    (job,) = parse_sacct(text, USERS)
    assert job.state == "FAILED" and job.step_exit_code == "3:0"
    assert len(job.failed_steps) == 3


def test_step_failure_rules() -> None:
    assert step_failed("FAILED", "1:0") and step_failed("CANCELLED", "0:0")
    assert step_failed("COMPLETED", "2:0") and step_failed("NODE_FAIL", "0:0")
    assert not step_failed("COMPLETED", "0:0") and not step_failed("RUNNING", "")
    assert reported_state("COMPLETED", True) == "FAILED"
    assert reported_state("OUT_OF_MEMORY", True) == "OUT_OF_MEMORY"  # already a failure
    assert reported_state("COMPLETED", False) == "COMPLETED"


def test_slurmctld_derived_exit_code_marks_the_job_failed_without_accounting() -> None:
    job = {"job_id": 111, "name": "partial", "user_id": 1879048192, "job_state": "COMPLETED",
           "nodes": "compute[12-15]", "submit_time": 1, "start_time": 2, "end_time": 14,
           "exit_code": 0, "derived_exit_code": 1001}
    (record,) = parse_squeue_json(json.dumps({"jobs": [job]}), USERS, 20.0)
    assert (record.state, record.slurm_state, record.exit_code) == (
        "FAILED", "COMPLETED", "0:0")
    assert record.step_exit_code == "3:105"
    (clean,) = parse_squeue_json(json.dumps({"jobs": [{**job, "derived_exit_code": 0}]}),
                                 USERS, 20.0)
    assert (clean.state, clean.slurm_state, clean.step_exit_code) == ("COMPLETED", "", "")


def test_derived_exit_code_of_newer_slurm_json_objects() -> None:
    # Slurm 24.11 (data_parser v0.0.42): states are lists, exit codes objects
    assert derived_status({"status": ["EXITED"], "return_code": {"set": True, "number": 2},
                           "signal": {"id": {"set": False, "number": 0}, "name": ""}}) == 512
    assert derived_status({"status": ["SIGNALED"], "return_code": {"number": 0},
                           "signal": {"id": {"set": True, "number": 9}}}) == 9
    assert derived_status(None) == 0 and derived_status("junk") == 0
    text = json.dumps({"jobs": [{"job_id": 3, "job_state": ["COMPLETED"],
                                 "derived_exit_code": {"return_code": {"number": 1}}}]})
    assert derived_status_of(text, 3) == 256 and derived_status_of(text, 4) == 0
    assert derived_status_of("not json", 3) == 0
    (record,) = parse_squeue_json(text, USERS, 20.0)
    assert (record.state, record.slurm_state) == ("FAILED", "COMPLETED")
