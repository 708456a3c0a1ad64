"""vhpc.Cluster against real clusters: boot/teardown, commands, jobs, host clients, attach.

Each test boots a 2-node cluster named t6py* and checks that nothing of it is left.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.integration.helpers import leftovers, vhpc
from vhpc import Cluster, control
from vhpc.errors import ClusterStateError, CommandError
from vhpc.python_api import JobTimeoutError

pytestmark = pytest.mark.privileged


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """One cluster for the tests of this module that only use it."""
    try:
        with Cluster(name="t6py", nodes=2) as c:
            yield c
    finally:
        if control.is_up("t6py"):
            control.down("t6py")
    assert leftovers("t6py") == []


def test_run_in_nodes_as_root_and_as_the_user(cluster: Cluster) -> None:
    result = cluster.run("srun -N2 hostname", user="cluser", check=True)
    assert sorted(result.stdout.split()) == ["compute0", "compute1"]
    assert cluster.run("id -un", node="compute1").stdout.strip() == "root"
    assert cluster.run(["hostname"], node="compute1").stdout.strip() == "compute1"
    failed = cluster.run("echo out; echo err >&2; exit 3", node="compute0")
    assert (failed.returncode, failed.stdout, failed.stderr) == (3, "out\n", "err\n")
    with pytest.raises(CommandError, match="'exit 3' failed"):
        cluster.run("exit 3", check=True)
    with pytest.raises(CommandError, match="timed out after 1s in node 'slurm'"):
        cluster.run("sleep 30", timeout=1)


def test_sbatch_and_wait_as_cluser(cluster: Cluster) -> None:
    job = cluster.sbatch("#!/bin/bash\n#SBATCH -N2\nsrun hostname\nid -un\n", user="cluser")
    result = cluster.wait(job, timeout=60)
    assert result.ok, result
    assert result.nodes == "compute[0-1]"
    assert result.stdout_path == cluster.home / f"slurm-{job}.out"
    assert result.stdout is not None
    assert sorted(result.stdout.split()) == ["cluser", "compute0", "compute1"]
    assert result.stdout_path.stat().st_uid == cluster.spec.user_uid


def test_failing_job_gives_its_exit_code(cluster: Cluster) -> None:
    result = cluster.wait(cluster.sbatch("echo about to fail\nexit 7\n"), timeout=60)
    assert (result.state, result.exit_code, result.ok) == ("FAILED", 7, False)
    assert result.stdout == "about to fail\n"


def test_wait_times_out_with_a_vhpc_error_then_cancel(cluster: Cluster) -> None:
    job = cluster.sbatch("sleep 60\n")
    with pytest.raises(JobTimeoutError, match=f"job {job} is still"):
        cluster.wait(job, timeout=1)
    cluster.cancel(job)
    assert cluster.wait(job, timeout=30).state == "CANCELLED"


def test_host_clients_and_shared_home(cluster: Cluster) -> None:
    env = dict(os.environ, **cluster.env())
    marker = cluster.home / "from-host.txt"
    marker.write_text("written on the host\n")
    seen = cluster.run(f"cat {marker}", node="compute1", user="cluser", check=True)
    assert seen.stdout == "written on the host\n"
    script = cluster.home / "host-job.sh"
    script.write_text("#!/bin/bash\nhostname > host-job.out\n")
    out = subprocess.run(["sbatch", "--parsable", f"--chdir={cluster.home}", "-w", "compute1",
                          str(script)], env=env, capture_output=True, text=True, check=True)
    job = int(out.stdout.strip().split(";")[0])
    assert cluster.wait(job, timeout=60).ok
    assert (cluster.home / "host-job.out").read_text() == "compute1\n"
    for argv in (["sinfo", "-h", "-o", "%D %T"], ["squeue", "-h"],
                 ["scontrol", "show", "job", str(job)]):
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
        assert done.returncode == 0
    assert subprocess.run(["sinfo", "-h", "-o", "%D %T"], env=env, capture_output=True,
                          text=True).stdout.split() == ["2", "idle"]


def test_status_logs_and_metrics(cluster: Cluster) -> None:
    status = cluster.status()
    assert status.phase == "ready" and status.progress.message == "ready"
    assert cluster.nodes == ["compute0", "compute1"]
    series = cluster.metrics(node="compute0", metric="memory", since=60)
    assert isinstance(series, list)
    assert all(s.node == "compute0" and s.metric == "memory" for s in series)
    deadline = time.monotonic() + 15
    while not (logs := cluster.logs(node="compute0", limit=5)) and time.monotonic() < deadline:
        time.sleep(0.5)  # the log tailer ships lines within a second or two
    assert 1 <= len(logs) <= 5, "no log line of compute0's slurmd"
    assert all(line.node == "compute0" for line in logs)
    assert cluster.logs(grep="no-such-word-in-any-log-xyzzy") == []


def test_add_and_remove_a_node(cluster: Cluster) -> None:
    record = cluster.add_node("compute2")
    try:
        assert record.name == "compute2" and record.role == "compute"
        assert cluster.nodes == ["compute0", "compute1", "compute2"]
        out = cluster.run("srun -N3 hostname", user="cluser", check=True).stdout
        assert sorted(out.split()) == ["compute0", "compute1", "compute2"]
        assert cluster.run("hostname", node="compute2").stdout == "compute2\n"
    finally:
        cluster.remove_node("compute2")
    assert cluster.nodes == ["compute0", "compute1"]


def test_context_manager_cleans_up_when_the_body_raises() -> None:
    with pytest.raises(RuntimeError, match="job script bug"), \
            Cluster(name="t6pyraise", nodes=2) as c:
        assert c.run("true").ok
        raise RuntimeError("job script bug")
    assert not control.is_up("t6pyraise")
    assert leftovers("t6pyraise") == []


def test_attach_to_a_cluster_the_cli_booted() -> None:
    name = "t6pyattach"
    with pytest.raises(ClusterStateError, match="is not up"):
        Cluster.attach(name)
    vhpc("-c", name, "up", "-n", "2")
    try:
        with Cluster.attach(name) as c:
            assert c.run("srun -N2 hostname", user="cluser").stdout.count("compute") == 2
        assert control.is_up(name), "leaving an attached cluster's block must not stop it"
        Cluster.attach(name).stop()
    finally:
        if control.is_up(name):
            control.down(name)
    assert leftovers(name) == []
