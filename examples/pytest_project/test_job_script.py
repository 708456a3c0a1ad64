"""Testing a Slurm job script against a real 2-node cluster (run as root: pytest -v)."""

from pathlib import Path

import pytest

JOB = Path(__file__).with_name("job.sh")


def test_job_script_runs_on_both_nodes(vhpc_cluster):
    result = vhpc_cluster.wait(vhpc_cluster.sbatch(JOB), timeout=120)
    assert result.exit_code == 0, result.stdout
    lines = result.stdout.split("\n")
    assert {"compute0", "compute1"} <= set(lines)
    assert {"rank 0 of 2", "rank 1 of 2"} <= set(lines)


@pytest.mark.vhpc(nodes=1, memory="125M")
def test_a_job_over_the_node_memory_limit_fails(vhpc_cluster):
    hog = "/opt/vhpc/venv/bin/python -c 'b = bytearray(190 * 2**20)'"
    result = vhpc_cluster.wait(vhpc_cluster.sbatch(f"srun {hog}\n"), timeout=120)
    assert not result.ok
    assert result.state in ("OUT_OF_MEMORY", "FAILED"), result
