"""Open MPI in the nodes: ranks that yield their CPU while they wait (pure).

A vhpc node nearly always shares its CPUs: 16 nodes on a 2-core host, or more ranks
than CPUs in one node (`srun -n4 --overcommit` on a 1-CPU node). Open MPI's ranks
busy-poll while they wait for a message, so a waiting rank burns the time slice the
rank it waits for needs: mpi4py's ringtest with 4 ranks on 2 cores took 195 times as
long as with 2. With `mpi_yield_when_idle` a waiting rank calls sched_yield() between
polls, and the 4 ranks run within a small factor of the 2 (docs/mpi.md).

vhpc sets it where a site admin would: the system-wide MCA parameter file
(`/etc/openmpi/openmpi-mca-params.conf`), which Open MPI 4.1 (the host's, Debian 12) and
5.0 (Debian 13 images) both read. Each node gets the cluster's copy of its own root's
file (the host's or the image's, Debian's defaults kept) with the setting added, bound
over the original: every rank of every job and every `mpirun` in a node sees it, and
the host's file is never touched. A job that wants the spinning back sets
`OMPI_MCA_mpi_yield_when_idle=0` (the environment beats the file). A Slurm TaskProlog
would do too, but with one configured Slurm 22.05 puts a NUL byte on every
`srun --pty` terminal. `vhpc exec` sessions also get the variable itself (JOB_ENV).
"""

from __future__ import annotations

from pathlib import Path

from vhpc.spec.paths import ClusterPaths

#: The system-wide parameter file of Debian's Open MPI (4.1 and 5.0), inside a node.
MCA_PARAMS_TARGET = "/etc/openmpi/openmpi-mca-params.conf"

#: The MCA parameters vhpc sets for every node (name without the OMPI_MCA_ prefix).
MCA_PARAMS: dict[str, str] = {
    # ob1's progress loop calls sched_yield() when a poll found nothing (Open MPI 4 and 5)
    "mpi_yield_when_idle": "1",
}

#: The same as environment variables, for `vhpc exec` sessions (mpirun outside Slurm).
JOB_ENV: dict[str, str] = {f"OMPI_MCA_{name}": value for name, value in MCA_PARAMS.items()}


def mca_params_file(paths: ClusterPaths) -> Path:
    """The cluster's copy of the parameter file, bound into every node."""
    return paths.etc / "openmpi-mca-params.conf"


def render_mca_params(base: str, params: dict[str, str] | None = None) -> str:
    """The node root's own parameter file `base` without lines of the parameters vhpc
    sets, then vhpc's values."""
    chosen = MCA_PARAMS if params is None else params
    kept = [line for line in base.splitlines()
            if line.split("=", 1)[0].strip() not in chosen]
    lines = [*kept, "", "# added by vhpc (services/openmpi.py): ranks yield shared CPUs"]
    lines += [f"{name} = {value}" for name, value in sorted(chosen.items())]
    return "\n".join(lines).lstrip("\n") + "\n"
