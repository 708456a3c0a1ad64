"""Fake GPUs scheduled by real Slurm: gres.conf and each GPU node's own /dev.

One cluster for the module: compute0 boots with `--gpus a100:2`, compute1 is added with
`node add --gpus 2`; both have 2 CPUs, so two 1-GPU jobs fit on one node by CPUs and
only the GPUs decide whether a third one runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.helpers import (
    STATE_ROOT,
    exec_on,
    in_a_terminal,
    leftovers,
    status,
    vhpc,
    wait_until,
)

pytestmark = pytest.mark.privileged
NAME = "hhgpu"
PARTITION = "gpu"


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    vhpc("-c", NAME, "clean", check=False)
    vhpc("-c", NAME, "up", "-n", "1", "--cpus", "2", "--memory", "200M",
         "--gpus", "a100:2", "--partition", PARTITION)
    try:
        vhpc("-c", NAME, "node", "add", "compute1", "--cpus", "2", "--gpus", "2")
        yield NAME
    finally:
        vhpc("-c", NAME, "down", check=False)
        assert leftovers(NAME) == []
        assert not (STATE_ROOT / NAME).exists()


def run(node: str, *command: str, check: bool = True, user: bool = True) -> str:
    return exec_on(NAME, node, *command, check=check, user=user).stdout


def env_of(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def test_bad_gpu_request_is_one_line_and_makes_nothing() -> None:
    result = vhpc("-c", "hhbad", "up", "-n", "1", "--gpus", "a100:x", check=False)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "--gpus" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (STATE_ROOT / "hhbad").exists()


def test_status_shows_each_nodes_gres(cluster: str) -> None:
    gres = {n["name"]: n["gres"] for n in status(cluster)["nodes"]}
    assert gres["compute0"] == "gpu:a100:2"
    assert gres["compute1"] == "gpu:2"
    assert gres["slurm"] == ""
    table = vhpc("-c", cluster, "status").stdout
    assert "GRES" in table and "gpu:a100:2" in table
    sinfo = run("slurm", "sinfo", "-h", "-N", "-o", "%N %G")
    assert "compute0 gpu:a100:2" in sinfo and "compute1 gpu:2" in sinfo


def test_a_job_asking_for_two_gpus_sees_both(cluster: str) -> None:
    for node in ("compute0", "compute1"):
        env = env_of(run("slurm", "srun", "-p", PARTITION, "-w", node, "--gres=gpu:2", "env"))
        assert env["CUDA_VISIBLE_DEVICES"] == "0,1", node
    job = env["SLURM_JOB_ID"]
    # accounting (on by default) counts GPUs as a TRES
    wait_until(lambda: "gres/gpu=2" in run("slurm", "sacct", "-X", "-n", "-j", job, "-o",
                                          "AllocTRES%80"), 60, "the job's GPUs in sacct")


def test_more_gpus_than_a_node_has_is_refused_at_submission(cluster: str) -> None:
    out = vhpc("-c", cluster, "exec", "slurm", "--user", "cluser", "--", "sbatch",
               "-p", PARTITION, "--gres=gpu:3", "--wrap", "true", check=False)
    assert out.returncode != 0
    assert "Requested node configuration is not available" in out.stderr
    assert "gpu:3" not in run("slurm", "squeue", "-h", "-o", "%b")


def test_one_gpu_jobs_get_different_devices_and_a_third_waits(cluster: str) -> None:
    ids = []
    for i in range(3):
        out = run("slurm", "sbatch", "--parsable", "-p", PARTITION, "-w", "compute0",
                  "--gres=gpu:1", "-o", f"/tmp/hhgpu-{i}.out", "--wrap",
                  "echo CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES; nvidia-smi -L; sleep 300")
        ids.append(out.strip().split(";")[0])
    try:
        def states() -> dict[str, tuple[str, str]]:
            rows = run("slurm", "squeue", "-h", "-o", "%i %T %r").split("\n")
            return {r.split()[0]: (r.split()[1], r.split()[2]) for r in rows if r.strip()}

        def two_ran_and_wrote() -> bool:
            now = states()
            running = [i for i in ids if now.get(i, ("", ""))[0] == "RUNNING"]
            # the third's reason is 'None' until the scheduler has looked at it
            evaluated = all(now.get(i, ("", ""))[1] != "None" for i in ids if i not in running)
            return len(running) == 2 and evaluated and all(
                "GPU " in run("compute0", "cat", f"/tmp/hhgpu-{ids.index(i)}.out", check=False)
                for i in running)

        wait_until(two_ran_and_wrote, 90,
                   "two 1-GPU jobs running with their output, the third's reason known")
        now = states()
        running = [i for i in ids if now[i][0] == "RUNNING"]
        waiting = [i for i in ids if i not in running]
        assert len(waiting) == 1 and now[waiting[0]] == ("PENDING", "Resources")
        outputs = [run("compute0", "cat", f"/tmp/hhgpu-{ids.index(i)}.out") for i in running]
        devices = sorted(env_of(o)["CUDA_VISIBLE_DEVICES"] for o in outputs)
        assert devices == ["0", "1"]
        for text, device in ((o, env_of(o)["CUDA_VISIBLE_DEVICES"]) for o in outputs):
            gpus = [x for x in text.splitlines() if x.startswith("GPU ")]
            assert len(gpus) == 1 and gpus[0].startswith(f"GPU {device}: NVIDIA A100 "
                                                         "(simulated by vhpc)")
    finally:
        run("slurm", "scancel", *ids, check=False)


def test_nvidia_smi_in_a_job_shows_the_jobs_gpus_marked_simulated(cluster: str) -> None:
    table = run("slurm", "srun", "-p", PARTITION, "-w", "compute0", "--gres=gpu:2",
                "nvidia-smi")
    assert "NVIDIA-SMI (simulated by vhpc" in table
    assert table.count("A100 (sim)") == 2 and "40960MiB" in table
    listed = run("slurm", "srun", "-p", PARTITION, "-w", "compute1", "--gres=gpu:1",
                 "nvidia-smi", "-L")
    assert len(listed.splitlines()) == 1
    assert listed.startswith("GPU 0: Simulated GPU (simulated by vhpc) (UUID: GPU-")
    no_gpu = vhpc("-c", cluster, "exec", "slurm", "--user", "cluser", "--", "srun", "-p",
                  PARTITION, "-w", "compute1", "nvidia-smi", check=False)
    assert no_gpu.returncode != 0 and "No devices were found" in no_gpu.stdout


def test_each_node_sees_only_its_own_devices(cluster: str) -> None:
    def inodes(node: str) -> set[str]:
        out = run(node, "sh", "-c", "ls -i /dev/nvidia* 2>/dev/null || true", user=False)
        return {line.split()[0] for line in out.splitlines() if line.strip()}

    first, second = inodes("compute0"), inodes("compute1")
    assert len(first) == 2 and len(second) == 2
    assert not first & second
    assert inodes("slurm") == set()
    host = {str(p.stat().st_ino) for p in Path("/dev").glob("nvidia[0-9]*")}
    assert not host & (first | second)
    # the node's /dev still works as one: devices, a pty, message queues
    assert run("compute0", "sh", "-c", "echo x > /dev/null && head -c1 /dev/zero | wc -c"
               ).strip() == "1"
    mounts = run("compute0", "cat", "/proc/self/mounts", user=False)
    assert " /dev/pts devpts " in mounts and " /dev/shm tmpfs " in mounts
    assert " /dev/mqueue mqueue " in mounts


def test_terminals_work_in_a_gpu_node(cluster: str) -> None:
    # the terminal vhpc exec passes in has its name in the node's /dev/pts (the host's)
    assert in_a_terminal("-c", cluster, "exec", "compute0", "--", "tty").startswith(
        "/dev/pts/")
    # and a job step gets a new pseudo-terminal (the cluster user opens /dev/ptmx)
    out = in_a_terminal("-c", cluster, "exec", "slurm", "--user", "cluser", "--", "srun",
                        "-p", PARTITION, "-w", "compute0", "--pty", "tty")
    assert out.strip().startswith("/dev/pts/"), repr(out)
