"""Per-job limits inside a node (issue 9, item 2), with the real Slurm cgroup plugins.

A job gets its own cgroup below its node's (cgroup namespace + the node's own cgroup
mounts): `--mem` and `--mem-per-cpu` are enforced per job, a job that goes over is
OOM-killed in its cgroup while the node and another job on it live on; `--cpus-per-task`
pins a job to its CPUs. The node's memory counts its jobs, and `down` leaves no cgroup.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.helpers import leftovers, status, vhpc, wait_for

pytestmark = pytest.mark.privileged

NAME = "hmjl"
NODE = "compute0"
V1 = Path("/sys/fs/cgroup")
#: touches 80 MB for real (a bytes object, not lazily zeroed pages)
HOG = "b = b'x' * (80 << 20); print('survived', len(b))"


def node_cgroup(hierarchy: str) -> Path:
    return V1 / hierarchy / f"vhpc-{NAME}" / NODE


def node_oom_kills() -> int:
    """The node's OOM kills as `vhpc status` shows them."""
    return int(next(n["oom_kills"] for n in status(NAME)["nodes"] if n["name"] == NODE))


def srun(*args: str) -> subprocess.CompletedProcess[str]:
    return vhpc("-c", NAME, "exec", "slurm", "--user", "cluser", "--", "srun", "-w", NODE,
                *args, check=False, timeout=120)


def sbatch(*args: str) -> str:
    """Submit as the cluster user; the job id."""
    return vhpc("-c", NAME, "exec", "slurm", "--user", "cluser", "--", "sbatch",
                "--parsable", "-w", NODE, *args, timeout=60).stdout.strip()


def slurm(*args: str) -> str:
    return vhpc("-c", NAME, "exec", "slurm", "--", *args, timeout=60).stdout


def job_field(job: str, field: str) -> str:
    out = slurm("scontrol", "show", "job", "-o", job)
    return next(w.split("=", 1)[1] for w in out.split() if w.startswith(f"{field}="))


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """One 2-CPU compute node with room for two small jobs; removed with nothing left."""
    vhpc("-c", NAME, "clean", "--force", check=False)
    vhpc("-c", NAME, "up", "-n", "1", "--cpus", "2", "--memory", "300M")
    try:
        if status(NAME)["cgroup_version"] != 1:
            pytest.skip("per-job cgroups are made on cgroup v1 hosts only (architecture.md)")
        yield NAME
    finally:
        vhpc("-c", NAME, "down", check=False)
        assert leftovers(NAME) == []


def test_a_job_over_its_memory_is_killed_alone(cluster: str) -> None:
    survivor = sbatch("--mem=30M", "-c1", "--wrap", "sleep 600")
    try:
        assert wait_for(lambda: job_field(survivor, "JobState") == "RUNNING", 60)
        kills_before = node_oom_kills()
        hog = srun("--mem=30M", "-c1", "python3", "-c", HOG)
        assert hog.returncode != 0
        assert "survived" not in hog.stdout
        assert "Out Of Memory" in hog.stderr or "oom-kill" in hog.stderr, hog.stderr

        # srun returns when its step ends; the job may still be COMPLETING a moment later
        def job_states() -> list[str]:
            return slurm("squeue", "-h", "-t", "all", "-o", "%i %T").split("\n")

        assert wait_for(lambda: any(line.endswith(" OUT_OF_MEMORY") for line in job_states()),
                        60), job_states()
        # the node and the other job live on; the OOM was the job's, not the node's
        assert job_field(survivor, "JobState") == "RUNNING"
        state = slurm("sinfo", "-h", "-n", NODE, "-o", "%T").strip()
        assert state in ("mixed", "idle", "allocated"), state
        oom = (node_cgroup("memory") / "memory.oom_control").read_text()
        assert "oom_kill 0" in oom.splitlines()
        # ...yet vhpc counts it in the node (v1 counts it only in the job's cgroup, now gone)
        assert node_oom_kills() == kills_before + 1
    finally:  # a failed check must not leave its CPU taken for the module's next tests
        slurm("scancel", survivor)


def accounting_on() -> bool:
    conf = vhpc("-c", NAME, "exec", "slurm", "--", "scontrol", "show", "config").stdout
    return "accounting_storage/slurmdbd" in conf


def sacct(job: str) -> dict[str, tuple[str, str]]:
    """JobID -> (State, MaxRSS) of a job and its steps, from slurmdbd."""
    out = slurm("sacct", "-n", "-P", "-j", job, "-o", "JobID,State,MaxRSS")
    return {f[0]: (f[1], f[2]) for f in (line.split("|") for line in out.split())}


def test_sacct_reports_the_oom_and_the_max_rss(cluster: str) -> None:
    if not accounting_on():
        pytest.skip("the cluster has no accounting")
    hog = srun("--mem=30M", "python3", "-c", HOG)
    assert hog.returncode != 0
    # holds 40 MB for longer than JobAcctGatherFrequency, so a sample sees it
    held = srun("--mem=80M", "python3", "-c",
                "import time; b = b'x' * (40 << 20); time.sleep(7)")
    assert held.returncode == 0, held.stderr
    jobs = slurm("squeue", "-h", "-t", "all", "-o", "%i %T").split("\n")
    oom = max(int(line.split()[0]) for line in jobs if line.endswith(" OUT_OF_MEMORY"))
    done = max(int(line.split()[0]) for line in jobs if line.endswith(" COMPLETED"))

    def recorded() -> bool:
        steps = {**sacct(str(oom)), **sacct(str(done))}
        return f"{oom}.0" in steps and f"{done}.0" in steps and steps[f"{done}.0"][1] != ""

    assert wait_for(recorded, 60), (sacct(str(oom)), sacct(str(done)))
    assert sacct(str(oom))[str(oom)][0] == "OUT_OF_MEMORY"
    max_rss = sacct(str(done))[f"{done}.0"][1]
    assert max_rss.endswith(("K", "M")), max_rss
    kb = float(max_rss[:-1]) * (1024 if max_rss.endswith("M") else 1)
    assert kb >= 40 * 1024, max_rss


def test_mem_per_cpu_is_the_jobs_limit_too(cluster: str) -> None:
    hog = srun("--mem-per-cpu=40M", "-c1", "python3", "-c", HOG)
    assert hog.returncode != 0 and "survived" not in hog.stdout
    fits = srun("--mem-per-cpu=60M", "-c2", "python3", "-c", HOG)  # 120M for the job
    assert fits.returncode == 0, fits.stderr
    assert "survived" in fits.stdout


def test_the_job_cgroup_has_the_jobs_limit_below_the_nodes(cluster: str) -> None:
    script = ("d=/sys/fs/cgroup/memory$(grep :memory: /proc/self/cgroup | cut -d: -f3); "
              "cat $d/../../memory.limit_in_bytes; cat /proc/self/cgroup")
    out = srun("--mem=50M", "sh", "-c", script)
    assert out.returncode == 0, out.stderr
    limit, *cgroups = out.stdout.split()
    assert int(limit) == 50 << 20
    # inside the node, its own cgroup is the root: paths start at Slurm's
    memory = next(c for c in cgroups if ":memory:" in c).split(":", 2)[2]
    assert memory.startswith(f"/slurm_{NODE}/uid_") and "/job_" in memory, memory
    assert "vhpc-" not in " ".join(cgroups)


def test_cpus_per_task_pins_the_job(cluster: str) -> None:
    one = srun("-c1", "grep", "Cpus_allowed_list", "/proc/self/status")
    assert one.returncode == 0, one.stderr
    cpus = one.stdout.split()[-1]
    assert cpus.isdigit(), cpus  # a single CPU
    two = srun("-c2", "grep", "Cpus_allowed_list", "/proc/self/status")
    assert two.stdout.split()[-1] in ("0-1", "0,1"), two.stdout


def test_a_node_pinned_to_a_later_host_cpu_binds_its_jobs_there(cluster: str) -> None:
    # Slurm maps a node's CPU i to the i-th CPU it finds: without the node's own topology a
    # node pinned to host CPU 1 bound its jobs to CPU 0, and its cpuset refused them
    vhpc("-c", NAME, "node", "add", "compute9", "--cpuset", "1", "--memory", "200M",
         timeout=180)
    out = vhpc("-c", NAME, "exec", "slurm", "--user", "cluser", "--", "srun", "-w",
               "compute9", "-c1", "grep", "Cpus_allowed_list", "/proc/self/status",
               check=False, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-1] == "1"


def test_the_node_counts_its_jobs_memory_and_down_removes_job_cgroups(cluster: str) -> None:
    hold = "b = b'x' * (40 << 20); import time; time.sleep(600)"
    job = sbatch("--mem=80M", "--wrap", f"python3 -c \"{hold}\"")
    assert wait_for(lambda: job_field(job, "JobState") == "RUNNING", 60)
    usage = node_cgroup("memory") / "memory.usage_in_bytes"
    assert wait_for(lambda: int(usage.read_text()) > 40 << 20, 60), usage.read_text()
    job_dirs = list(node_cgroup("memory").rglob(f"job_{job}"))
    assert job_dirs, "no job cgroup below the node's"
    # the fixture's `down` runs with this job alive: its cgroups must go with the node


def test_slurmd_reads_its_topology_without_hwloc_plugins(cluster: str) -> None:
    # the node's XML is its topology: hwloc's PCI/OpenCL/GL/libxml2 plugins (dlopened and
    # closed again at every topology load, ~8 ms of each slurmd and slurmstepd start) are
    # not loaded: the running slurmd's plugin path is an empty directory
    node = next(n for n in status(NAME)["nodes"] if n["name"] == NODE)
    pid = next(d["pid"] for d in node["services"] if d["name"] == "slurmd")
    assert Path(f"/proc/{pid}/exe").resolve().name.startswith("slurmd")
    env = dict(item.split("=", 1) for item in
               Path(f"/proc/{pid}/environ").read_text().split("\0") if "=" in item)
    assert env["HWLOC_XMLFILE"].endswith(f"/{NODE}/vhpc-topology.xml")
    plugins = Path(env["HWLOC_PLUGINS_PATH"])
    assert plugins.is_dir() and not any(plugins.iterdir())
