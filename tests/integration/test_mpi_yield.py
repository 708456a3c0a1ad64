"""MPI ranks inside a job yield their CPU while they wait (issue 12): every task Slurm
starts gets `OMPI_MCA_mpi_yield_when_idle=1` from vhpc's TaskProlog, Open MPI itself reads
it (ompi_info: data source environment), a job that sets its own value keeps it, and a
`vhpc exec` session has it too (mpirun outside Slurm)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.helpers import exec_on, leftovers, vhpc

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


def test_mpi_ranks_of_a_job_see_the_yield_setting(cluster: str) -> None:
    # env -u: the rank's value comes from the node (TaskProlog), not from this shell
    out = as_cluser(cluster, f"env -u {VAR} srun -N2 -n4 --overcommit --mpi=pmix "
                             f"/opt/vhpc/venv/bin/python -c \"{RANK_SNIPPET}\"")
    ranks = sorted(line.split() for line in out.splitlines() if line[:1].isdigit())
    assert [r[0] for r in ranks] == ["0", "1", "2", "3"], out
    assert {r[1] for r in ranks} == {"compute0", "compute1"}
    assert {r[2] for r in ranks} == {"1"}, out


def test_open_mpi_reads_it_and_a_job_may_set_its_own(cluster: str) -> None:
    info = as_cluser(cluster, f"env -u {VAR} srun -N1 ompi_info --param mpi all --level 9 "
                              "--parsable | grep yield_when_idle")
    assert "mca:mpi:base:param:mpi_yield_when_idle:value:true" in info, info
    assert "mpi_yield_when_idle:source:environment" in info, info
    own = as_cluser(cluster, f"{VAR}=0 srun -N1 printenv {VAR}")
    assert own.split() == ["0"]
    batch = as_cluser(cluster, f"env -u {VAR} sbatch -N1 --wait -o yield-%j.out --wrap "
                               f"'printenv {VAR}' >/dev/null && cat yield-*.out")
    assert batch.split() == ["1"]


def test_commands_run_in_a_node_have_it(cluster: str) -> None:
    assert exec_on(cluster, "compute1", "printenv", VAR).stdout.split() == ["1"]
