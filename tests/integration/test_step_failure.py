"""A job whose step failed on one node is not reported as success (issue 12).

The batch script runs `srun -N4 hostname` and exits 0 whatever srun did, so Slurm records
the job COMPLETED 0:0. Before the step starts, another node of the job is cut off from
the batch host (where srun runs; with dynamic nodes not always compute0) with `fault
partition --from`: srun's task launch fails there with Slurm's "Communication connection
failure" while slurmctld still reaches every node (so the job ends normally). vhpc's
Python API (`Cluster.wait`, `Cluster.jobs`), `GET /api/v1/jobs` and `vhpc jobs` must
report it FAILED; the same script without the fault is COMPLETED.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.helpers import leftovers, vhpc, wait_until
from vhpc import Cluster, control

pytestmark = pytest.mark.privileged
NAME = "slstep"
SCRIPT = """#!/bin/bash
#SBATCH -N4 -w compute[0-3] -o step-%j.out
# the step starts once the test says so (its fault is in place)
while [ ! -e go-$SLURM_JOB_ID ]; do sleep 0.2; done
srun -N4 hostname
echo "srun exit $?"
"""


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    vhpc("-c", NAME, "clean", check=False)
    try:
        with Cluster(name=NAME, nodes=4, memory="256M") as c:
            yield c
    finally:
        if control.is_up(NAME):
            control.down(NAME)
    assert leftovers(NAME) == []


def run_job(cluster: Cluster, cut: bool) -> tuple[int, str, str]:
    """Submit the script; with `cut`, partition one of its nodes from the batch host
    before the step; the job id, the node cut off and the output once srun returned."""
    job = cluster.sbatch(SCRIPT)
    wait_until(lambda: cluster.job(job).get("JobState") == "RUNNING", 120, "the job to run")
    batch_host = cluster.job(job)["BatchHost"]
    victim = next(n for n in ("compute3", "compute2") if n != batch_host)
    if cut:
        cluster.fault("partition", victim, peers=[batch_host])
    go = cluster.home / f"go-{job}"
    go.touch()
    os.chown(go, cluster.spec.user_uid, cluster.spec.user_uid)
    out = cluster.home / f"step-{job}.out"
    try:
        wait_until(lambda: "srun exit" in _read(out), 120, "srun to return")
    finally:
        if cut:
            cluster.clear_faults()
    return job, victim, _read(out)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def test_a_job_whose_step_launched_everywhere_is_completed(cluster: Cluster) -> None:
    job, _, output = run_job(cluster, cut=False)
    assert "srun exit 0" in output
    result = cluster.wait(job, timeout=120)
    assert result.ok and (result.state, result.slurm_state) == ("COMPLETED", "")


def test_a_partial_launch_failure_is_reported_failed(cluster: Cluster) -> None:
    job, victim, output = run_job(cluster, cut=True)
    assert f"failed on node {victim}" in output, output  # Slurm's own launch error
    assert "srun exit 0" not in output
    # what Slurm itself says: the batch script exited 0
    assert cluster.job(job)["ExitCode"] == "0:0"

    result = cluster.wait(job, timeout=120)
    assert not result.ok
    assert (result.state, result.slurm_state, result.exit_code) == ("FAILED", "COMPLETED", 0)
    assert result.step_exit_code not in ("", "0:0")

    # the manager's job list (GET /api/v1/jobs), from slurmctld and then from sacct
    def record() -> dict[str, object]:
        found = [j for j in cluster.jobs(finished=True) if j.id == str(job)]
        return found[0].model_dump() if found else {}

    wait_until(lambda: record().get("state") == "FAILED", 60, "the job list to say FAILED")
    wait_until(lambda: record().get("source") == "sacct", 120, "accounting to have the job")
    doc = record()
    assert (doc["state"], doc["slurm_state"]) == ("FAILED", "COMPLETED")
    failed = doc["failed_steps"]
    assert isinstance(failed, list) and any(s.startswith(f"{job}.0 ") for s in failed), doc

    # the CLI reads the same document
    listed = json.loads(vhpc("-c", NAME, "jobs", "--all", "--json").stdout)["jobs"]
    assert [j["state"] for j in listed if j["id"] == str(job)] == ["FAILED"]
