"""The real gemm_block_mpi under mpirun on the host (4 ranks, small N): PASSED and FAILED.

Needs Open MPI's mpirun and the job venv /opt/vhpc/venv (mpi4py, numpy); skipped without.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from vhpc.workloads import BIN_DIR

JOB_PYTHON = Path("/opt/vhpc/venv/bin/python")
PROGRAM = BIN_DIR / "gemm_block_mpi"


def _missing() -> str | None:
    if shutil.which("mpirun") is None:
        return "mpirun (Open MPI) is not installed"
    if not JOB_PYTHON.exists():
        return f"{JOB_PYTHON} is missing (make install creates the job venv)"
    probe = subprocess.run([str(JOB_PYTHON), "-c", "import mpi4py, numpy"],
                           capture_output=True, check=False)
    if probe.returncode != 0:
        return f"{JOB_PYTHON} lacks mpi4py or numpy"
    return None


pytestmark = pytest.mark.skipif(_missing() is not None, reason=str(_missing()))


def mpirun(ranks: int, *args: str) -> subprocess.CompletedProcess[str]:
    """Run gemm_block_mpi on ``ranks`` host ranks with the job python."""
    cmd = ["mpirun", "--allow-run-as-root", "--oversubscribe", "-np", str(ranks),
           str(JOB_PYTHON), str(PROGRAM), *args]
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env,
                          check=False)


def json_report(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The one JSON object rank 0 printed."""
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1, proc.stdout + proc.stderr
    report: dict[str, Any] = json.loads(lines[0])
    return report


def test_four_ranks_pass_verification() -> None:
    proc = mpirun(4, "-n", "301", "--json", "--block", "50")
    assert proc.returncode == 0, proc.stderr
    report = json_report(proc)
    assert report["verification"] == "PASSED"
    assert (report["ranks"], report["grid"], report["n"]) == (4, [2, 2], 301)
    assert sorted(r["rank"] for r in report["rank_info"]) == [0, 1, 2, 3]
    assert all(r["host"] and r["peak_rss_kib"] > 0 for r in report["rank_info"])
    assert sum(r["local_shape"][0] * r["local_shape"][1] for r in report["rank_info"]) == 301**2
    assert report["gflops"] > 0


def test_text_output_like_the_seed_positional_size() -> None:
    proc = mpirun(2, "128", "--dtype", "float32")
    assert proc.returncode == 0, proc.stderr
    assert "grid=1x2" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1].startswith("verification PASSED")


def test_corrupted_rank_fails_with_nonzero_exit() -> None:
    proc = mpirun(4, "-n", "256", "--json", "--corrupt-rank", "3")
    assert proc.returncode != 0
    report = json_report(proc)
    assert report["verification"] == "FAILED"
    assert report["corrupt_rank"] == 3


def test_usage_error_exits_two_and_says_why() -> None:
    proc = mpirun(2, "-n", "64", "--grid", "2x2")
    assert proc.returncode != 0
    assert "grid 2x2 needs 4 ranks, job has 2" in proc.stderr
    assert proc.stderr.count("gemm_block_mpi: error:") == 1  # rank 0 only
