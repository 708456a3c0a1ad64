"""MPI ranks inside a job yield their CPU while they wait (issue 12): every node's Open MPI
reads `mpi_yield_when_idle = 1` from the cluster's system-wide MCA parameter file (ompi_info:
data source file), in job steps and batch scripts on every node, a job that sets its own
value keeps it, a `vhpc exec` session has it too (mpirun outside Slurm), and `srun --pty`
terminals stay clean (a TaskProlog made Slurm write a NUL byte to them)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.helpers import exec_on, in_a_terminal, leftovers, vhpc

pytestmark = pytest.mark.privileged
NAME = "slyield"
VAR = "OMPI_MCA_mpi_yield_when_idle"
RANK_SNIPPET = ("import os; from mpi4py import MPI; c = MPI.COMM_WORLD; "
                f"print(c.rank, MPI.Get_processor_name(), os.environ.get('{VAR}', 'unset'))")


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    vhpc("-c", NAME, "clean", check=False)
    vhpc("-c", NAME, "up", "-n", "2", "--memory", "256M")
    try:
        yield NAME
    finally:
        vhpc("-c", NAME, "down", check=False)
        assert leftovers(NAME) == []


def as_cluser(cluster: str, script: str) -> str:
    return exec_on(cluster, "slurm", "bash", "-lc", script, user=True).stdout


YIELD_ON = "mca:mpi:base:param:mpi_yield_when_idle:value:true"
FROM_FILE = "mpi_yield_when_idle:source:file"
OMPI_INFO = "ompi_info --param mpi all --level 9 --parsable | grep yield_when_idle"


def test_every_nodes_open_mpi_reads_yield_from_the_parameter_file(cluster: str) -> None:
    # env -u: the value comes from the node, not from this shell's environment
    out = as_cluser(cluster, f"env -u {VAR} srun -N2 --ntasks-per-node=1 bash -c "
                             f"'echo $(hostname) $({OMPI_INFO} | tr \"\\n\" \" \")'")
    lines = sorted(line for line in out.splitlines() if line.startswith("compute"))
    assert [line.split()[0] for line in lines] == ["compute0", "compute1"], out
    assert all(YIELD_ON in line and FROM_FILE in line for line in lines), out
    ranks = as_cluser(cluster, f"env -u {VAR} srun -N2 -n4 --overcommit --mpi=pmix "
                               f"/opt/vhpc/venv/bin/python -c \"{RANK_SNIPPET}\"")
    assert sorted(line.split()[0] for line in ranks.splitlines()
                  if line[:1].isdigit()) == ["0", "1", "2", "3"], ranks


def test_a_batch_script_sees_it_and_a_job_may_set_its_own(cluster: str) -> None:
    own = as_cluser(cluster, f"{VAR}=0 srun -N1 bash -c '{OMPI_INFO}'")
    assert "mpi_yield_when_idle:value:false" in own and "source:environment" in own, own
    batch = as_cluser(cluster, f"env -u {VAR} sbatch -N1 --wait -o yield-%j.out --wrap "
                               f"'{OMPI_INFO}' >/dev/null && cat yield-*.out")
    assert YIELD_ON in batch and FROM_FILE in batch, batch


def test_srun_pty_terminals_get_no_stray_bytes(cluster: str) -> None:
    out = in_a_terminal("-c", cluster, "exec", "slurm", "--user", "cluser", "--",
                        "srun", "-N1", "--pty", "tty")
    assert out.strip().startswith("/dev/pts/"), repr(out)


def test_commands_run_in_a_node_have_it(cluster: str) -> None:
    assert exec_on(cluster, "compute1", "printenv", VAR).stdout.split() == ["1"]
