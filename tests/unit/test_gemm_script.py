"""gemm.sh, the batch script: which launcher and options it picks (stub srun/mpirun)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from vhpc.workloads import BIN_DIR

SCRIPT = BIN_DIR / "gemm.sh"


@pytest.fixture
def stubs(tmp_path: Path) -> Path:
    """A PATH directory with srun, mpirun and gemm_block_mpi stubs that echo their argv."""
    for name in ("srun", "mpirun", "gemm_block_mpi"):
        stub = tmp_path / name
        stub.write_text(f'#!/bin/sh\necho "{name} $*"\n')
        stub.chmod(0o755)
    return tmp_path


def run_script(stubs: Path, *args: str, **env: str) -> str:
    """Run gemm.sh with only the given Slurm/MPI variables set; its stdout."""
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("SLURM_", "OMPI_", "PMIX_", "PMI_", "GEMM_"))}
    clean.update(env)
    clean["PATH"] = f"{stubs}:/usr/bin:/bin"
    proc = subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True,
                          env=clean, timeout=30, check=True)
    return proc.stdout.strip()


def test_batch_job_runs_one_rank_per_node_with_pmix(stubs: Path) -> None:
    out = run_script(stubs, "4096", SLURM_JOB_ID="3")
    assert out == ("srun --mpi=pmix --kill-on-bad-exit=1 --ntasks-per-node=1 "
                   f"{stubs}/gemm_block_mpi 4096")


def test_user_task_count_wins(stubs: Path) -> None:
    out = run_script(stubs, "-n", "2048", SLURM_JOB_ID="3", SLURM_NTASKS="8")
    assert out == f"srun --mpi=pmix --kill-on-bad-exit=1 {stubs}/gemm_block_mpi -n 2048"


def test_mpirun_under_salloc_maps_one_per_node(stubs: Path) -> None:
    out = run_script(stubs, "1024", SLURM_JOB_ID="4", GEMM_LAUNCHER="mpirun")
    assert out.startswith("mpirun ")
    assert "--map-by ppr:1:node" in out
    assert out.endswith(f"{stubs}/gemm_block_mpi 1024")


def test_started_as_a_rank_runs_the_program_directly(stubs: Path) -> None:
    out = run_script(stubs, "512", "--json", OMPI_COMM_WORLD_SIZE="4", SLURM_JOB_ID="5")
    assert out == "gemm_block_mpi 512 --json"


def test_bad_launcher_is_a_usage_error(stubs: Path) -> None:
    with pytest.raises(subprocess.CalledProcessError) as err:
        run_script(stubs, "512", GEMM_LAUNCHER="ssh")
    assert err.value.returncode == 2


def test_memory_limit_reads_the_process_cgroup_v1_and_v2(tmp_path: Path) -> None:
    from vhpc.workloads.bin.gemm_mpi import memory_limit

    v1 = tmp_path / "v1"
    (v1 / "memory" / "vhpc-x" / "compute0").mkdir(parents=True)
    (v1 / "memory" / "vhpc-x" / "compute0" / "memory.limit_in_bytes").write_text("131072000\n")
    proc = tmp_path / "cgroup1"
    proc.write_text("5:cpuset:/vhpc-x/compute0\n4:memory:/vhpc-x/compute0\n0::/\n")
    assert memory_limit(str(v1), str(proc)) == 131072000
    v2 = tmp_path / "v2"
    (v2 / "vhpc-x" / "compute1").mkdir(parents=True)
    (v2 / "vhpc-x" / "compute1" / "memory.max").write_text("max\n")
    proc2 = tmp_path / "cgroup2"
    proc2.write_text("0::/vhpc-x/compute1\n")
    assert memory_limit(str(v2), str(proc2)) is None
    (v2 / "vhpc-x" / "compute1" / "memory.max").write_text("67108864\n")
    assert memory_limit(str(v2), str(proc2)) == 64 << 20
