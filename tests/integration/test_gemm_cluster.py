"""The block GEMM on a real 4-node vhpc cluster: srun, sbatch gemm.sh, corruption, OOM.

Boots `vhpc -c gemmtest up -n 4` (125M nodes) through the CLI and runs the workload as
cluser with srun --mpi=pmix across the nodes, from the nodes' PATH (/opt/vhpc/bin, where
`vhpc up` installs it).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.helpers import status, vhpc

pytestmark = pytest.mark.privileged

CLUSTER = "gemmtest"
NODES = 4
# float64 on a 2x2 grid: N=4096 needs ~150 MiB per rank (docs/gemm.md), a node has 125M.
OOM_SIZE = 4096


def run_in(node: str, *cmd: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run a command in a cluster node as cluser; never raises on a non-zero exit."""
    return vhpc("-c", CLUSTER, "exec", node, "--user", "cluser", "--", *cmd, check=False,
                timeout=timeout)


@pytest.fixture(scope="module")
def program() -> Iterator[dict[str, str]]:
    """A booted cluster; yields the paths of gemm_block_mpi and gemm.sh in its nodes."""
    vhpc("-c", CLUSTER, "up", "-n", str(NODES), "--memory", "125M", timeout=300)
    try:
        found = run_in("slurm", "sh", "-c", "command -v gemm_block_mpi && command -v gemm.sh")
        paths = found.stdout.split()
        assert found.returncode == 0, found.stderr
        assert paths == ["/opt/vhpc/bin/gemm_block_mpi", "/opt/vhpc/bin/gemm.sh"]
        yield {"gemm_block_mpi": paths[0], "gemm.sh": paths[1]}
    finally:
        vhpc("-c", CLUSTER, "down", check=False, timeout=300)


def srun_gemm(program: dict[str, str], *args: str,
              srun_opts: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """srun -N4 --mpi=pmix gemm_block_mpi ARGS as cluser from the controller."""
    return run_in("slurm", "srun", f"-N{NODES}", "--mpi=pmix", *srun_opts,
                  program["gemm_block_mpi"], *args, timeout=180)


def report_of(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The JSON report rank 0 printed."""
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1, f"stdout: {proc.stdout}\nstderr: {proc.stderr}"
    report: dict[str, Any] = json.loads(lines[0])
    return report


def oom_kills() -> int:
    """Total OOM kills over the compute nodes."""
    nodes = status(CLUSTER)["nodes"]
    return sum(int(n["oom_kills"]) for n in nodes if n["role"] == "compute")


def test_srun_across_four_nodes_passes(program: dict[str, str]) -> None:
    proc = srun_gemm(program, "-n", "512", "--json")
    assert proc.returncode == 0, proc.stderr
    report = report_of(proc)
    assert report["verification"] == "PASSED"
    assert report["grid"] == [2, 2]
    hosts = sorted(r["host"] for r in report["rank_info"])
    assert hosts == [f"compute{i}" for i in range(NODES)]
    assert all(r["peak_rss_kib"] < 125 * 1024 for r in report["rank_info"])


def test_corrupted_rank_fails_the_job(program: dict[str, str]) -> None:
    proc = srun_gemm(program, "-n", "512", "--json", "--corrupt-rank", "1")
    assert proc.returncode != 0
    assert report_of(proc)["verification"] == "FAILED"


def test_too_large_is_oom_killed_then_a_small_job_runs(program: dict[str, str]) -> None:
    before = oom_kills()
    # -K: ranks whose peer was OOM-killed may block in MPI; end the step when one dies
    proc = srun_gemm(program, "-n", str(OOM_SIZE), srun_opts=("-K",))
    assert proc.returncode != 0
    assert "verification PASSED" not in proc.stdout
    assert "Killed" in proc.stderr or "oom" in proc.stderr.lower(), proc.stderr
    # said before the run, with the node's limit and the size that would fit
    assert f"N={OOM_SIZE} needs about" in proc.stderr and "125 MiB" in proc.stderr
    assert oom_kills() > before
    after = srun_gemm(program, "-n", "512")
    assert after.returncode == 0, after.stderr
    assert "verification PASSED" in after.stdout


def test_sbatch_gemm_sh_like_the_seed(program: dict[str, str]) -> None:
    # like the seed's `sbatch -N4 gemm.sh`: the script is linked into the user's home
    script = (f"cd ~ && sbatch -N{NODES} --wait -o gemm-%j.out gemm.sh 1024 "
              "| awk '{print $4}'")
    submitted = run_in("slurm", "bash", "-lc", script)
    assert submitted.returncode == 0, submitted.stderr
    job = submitted.stdout.strip()
    out = run_in("slurm", "bash", "-lc", f"cat ~/gemm-{job}.out")
    assert "grid=2x2" in out.stdout
    assert "verification PASSED" in out.stdout


def test_mpirun_inside_salloc(program: dict[str, str]) -> None:
    proc = run_in("slurm", "salloc", f"-N{NODES}", "mpirun", program["gemm_block_mpi"],
                  "-n", "512", "--json")
    assert proc.returncode == 0, proc.stderr
    report = report_of(proc)
    assert report["verification"] == "PASSED"
    assert sorted(r["host"] for r in report["rank_info"]) == [f"compute{i}"
                                                              for i in range(NODES)]
