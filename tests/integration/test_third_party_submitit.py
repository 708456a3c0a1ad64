"""A third-party Slurm client from PyPI, unchanged: submitit drives a vhpc cluster through
the host's own sbatch/sacct/scancel. Runs examples/submitit_slurm.py as a user would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.helpers import leftovers

pytestmark = pytest.mark.privileged
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "submitit_slurm.py"


def test_submitit_example_runs_jobs_on_the_compute_nodes() -> None:
    pytest.importorskip("submitit", reason="pip install submitit (the dev extras pin it)")
    name = "t6submitit"
    try:
        done = subprocess.run([sys.executable, str(EXAMPLE), "--name", name, "--jobs", "4"],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        rows = [line.split() for line in done.stdout.splitlines()]
        assert sorted(int(value) for _, _, value in rows) == [0, 1, 4, 9]
        hosts = {host for host, _, _ in rows}
        assert hosts <= {"compute0", "compute1"} and hosts
        assert all(host == nodelist for host, nodelist, _ in rows)
    finally:
        from vhpc import control

        if control.is_up(name):
            control.down(name)
    assert leftovers(name) == []
