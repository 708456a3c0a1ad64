"""slurmrestd with JWTs, impossible jobs refused at submission, and the job history, against
a real cluster (slurmctld, slurmdbd, MariaDB, slurmrestd) booted as `hlrest`.

REST requests go from the host to the controller's address over the cluster network,
with real HTTP (httpx), as a user's script would after `vhpc token --slurm`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.integration.helpers import leftovers, vhpc
from vhpc import Cluster, control
from vhpc.python_api import JobRefusedError

pytestmark = pytest.mark.privileged

NAME = "hlrest"
API = "slurm/v0.0.38"


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """A 2-node cluster with accounting and a user alice of account physics."""
    try:
        with Cluster(name=NAME, nodes=2, users=["alice:physics"]) as c:
            yield c
    finally:
        if control.is_up(NAME):
            control.down(NAME)
    assert leftovers(NAME) == []


def headers(user: str, token: str) -> dict[str, str]:
    """slurmrestd's JWT headers."""
    return {"X-SLURM-USER-NAME": user, "X-SLURM-USER-TOKEN": token}


def test_rest_lists_nodes_with_a_token_and_refuses_without(cluster: Cluster) -> None:
    url = cluster.rest_url()
    token = cluster.slurm_token("cluser", lifespan=300)
    ok = httpx.get(f"{url}/{API}/nodes", headers=headers("cluser", token), timeout=30)
    assert ok.status_code == 200, ok.text
    assert sorted(n["name"] for n in ok.json()["nodes"]) == ["compute0", "compute1"]

    bare = httpx.get(f"{url}/{API}/nodes", timeout=30)
    assert bare.status_code == 401
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    wrong = httpx.get(f"{url}/{API}/nodes", headers=headers("cluser", forged), timeout=30)
    assert wrong.status_code != 200
    assert not wrong.json().get("nodes")
    # a token of one user does not pass for another
    other = httpx.get(f"{url}/{API}/nodes", headers=headers("alice", token), timeout=30)
    assert other.status_code != 200


def test_alice_submits_over_rest_and_reads_her_job_back(cluster: Cluster) -> None:
    url = cluster.rest_url()
    auth = headers("alice", cluster.slurm_token("alice", lifespan=300))
    home = str(cluster.paths.home / "alice")
    body = {"script": "#!/bin/bash\nid -un\nhostname\n",
            "job": {"name": "rest-alice", "current_working_directory": home,
                    "environment": {"PATH": "/usr/bin:/bin"}}}
    submitted = httpx.post(f"{url}/{API}/job/submit", json=body, headers=auth, timeout=30)
    assert submitted.status_code == 200, submitted.text
    assert submitted.json()["errors"] == []
    job_id = int(submitted.json()["job_id"])

    deadline = time.monotonic() + 60
    job: dict[str, object] = {}
    while time.monotonic() < deadline:
        read = httpx.get(f"{url}/{API}/job/{job_id}", headers=auth, timeout=30)
        assert read.status_code == 200, read.text
        job = read.json()["jobs"][0]
        if job["job_state"] == "COMPLETED":
            break
        time.sleep(0.5)
    assert (job["name"], job["user_name"], job["account"], job["job_state"]) == (
        "rest-alice", "alice", "physics", "COMPLETED")
    out = (cluster.paths.home / "alice" / f"slurm-{job_id}.out").read_text().split()
    assert out[0] == "alice" and out[1] in ("compute0", "compute1")

    # the job history (GET /api/v1/jobs, from sacct) has it with its account and MaxRSS
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        mine = [j for j in cluster.jobs(finished=True) if j.id == str(job_id)]
        if mine and mine[0].source == "sacct" and mine[0].max_rss is not None:
            break
        time.sleep(1)
    assert mine, "the finished job is not in /api/v1/jobs"
    record = mine[0]
    assert (record.name, record.user, record.account, record.state, record.exit_code) == (
        "rest-alice", "alice", "physics", "COMPLETED", "0:0")
    assert record.max_rss is not None and record.max_rss > 0
    assert record.end is not None and record.start is not None
    assert str(job_id) not in {j.id for j in cluster.jobs()}  # not a live job any more
    listed = vhpc("-c", NAME, "jobs", "--all").stdout
    assert f"{job_id}" in listed and "rest-alice" in listed and "physics" in listed


def test_token_and_env_commands(cluster: Cluster) -> None:
    token = vhpc("-c", NAME, "token", "--slurm", "--user", "alice").stdout.strip()
    assert token.count(".") == 2  # header.payload.signature
    api_token = vhpc("-c", NAME, "token").stdout.strip()
    assert api_token != token and api_token.count(".") == 0
    bad = vhpc("-c", NAME, "token", "--user", "mallory", check=False)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    assert "unknown user 'mallory'" in bad.stderr
    assert vhpc("-c", NAME, "token", "--lifespan", "0", check=False).returncode == 2
    env = vhpc("-c", NAME, "env").stdout
    assert f"export VHPC_SLURMRESTD_URL={cluster.rest_url()}\n" in env
    assert "SLURM_JWT" not in env  # Slurm's clients would switch to it (srun fails)
    with_jwt = vhpc("-c", NAME, "env", "--jwt", "--user", "alice").stdout
    assert "export SLURM_JWT=ey" in with_jwt and "export VHPC_SLURM_USER=alice" in with_jwt


def test_impossible_jobs_are_refused_and_node_add_raises_the_ceiling(
        cluster: Cluster) -> None:
    with pytest.raises(JobRefusedError, match="More processors requested than permitted"):
        cluster.sbatch("hostname\n", args=["-N3"])
    with pytest.raises(JobRefusedError, match="Requested node configuration is not available"):
        cluster.sbatch("hostname\n", args=["--mem=1000G"])
    srun = cluster.run("srun -N3 hostname", user="cluser", timeout=60)
    assert srun.returncode != 0
    assert "More processors requested than permitted" in srun.stderr
    assert cluster.jobs() == []  # nothing was queued

    cluster.add_node()
    job = cluster.sbatch("srun hostname | sort\n", args=["-N3"])
    result = cluster.wait(job, timeout=120)
    assert result.ok, result
    assert result.stdout is not None
    assert result.stdout.split() == ["compute0", "compute1", "compute2"]
    with pytest.raises(JobRefusedError, match="More processors requested"):
        cluster.sbatch("hostname\n", args=["-N4"])
