"""Open MPI in the nodes: ranks that yield their CPU while they wait (pure).

A vhpc node nearly always shares its CPUs: 16 nodes on a 2-core host, or more ranks
than CPUs in one node (`srun -n4 --overcommit` on a 1-CPU node). Open MPI's ranks
busy-poll while they wait for a message, so a waiting rank burns the time slice the
rank it waits for needs: mpi4py's ringtest with 4 ranks on 2 cores took 195 times as
long as with 2. With `mpi_yield_when_idle` a waiting rank calls sched_yield() between
polls, and the 4 ranks run within a small factor of the 2 (docs/mpi.md).

Open MPI takes the setting from its environment (`OMPI_MCA_<param>`), in 4.1 (the
host's, Debian 12) and 5.0 (Debian 13 images) alike, whatever root the node has; only
its ob1 messaging layer polls (UCX is not used over TCP and shared memory, PMIx and
PRRTE wait in poll()). vhpc gives it to every task Slurm starts, batch scripts included,
through a TaskProlog (`/etc/slurm/vhpc-task-prolog`: the cluster's Slurm directory,
mounted in every node, image or not) that exports each variable the job's own
environment does not already set; `vhpc exec` sessions get it in their environment too.
A job that wants the spinning back sets `OMPI_MCA_mpi_yield_when_idle=0` itself.
"""

from __future__ import annotations

from pathlib import Path

from vhpc.spec.paths import ClusterPaths

#: What every job (and every command run in a node) gets unless it sets it itself.
JOB_ENV: dict[str, str] = {
    # ob1's progress loop calls sched_yield() when a poll found nothing (Open MPI 4 and 5)
    "OMPI_MCA_mpi_yield_when_idle": "1",
}


def task_prolog_file(paths: ClusterPaths) -> Path:
    """The TaskProlog every slurmstepd runs before a task (in the cluster's /etc/slurm)."""
    return paths.slurm_etc / "vhpc-task-prolog"


def render_task_prolog(env: dict[str, str] | None = None) -> str:
    """The TaskProlog: print `export NAME=VALUE` (Slurm sets it in the task) for every
    variable of `env` (default JOB_ENV) the task's environment does not have yet."""
    lines = ["#!/bin/sh",
             "# written by vhpc: defaults for every task's environment (services/openmpi.py);",
             "# a variable the job sets itself is left alone"]
    for name, value in sorted((env if env is not None else JOB_ENV).items()):
        # Slurm takes the value literally (no shell quoting): plain words only
        if not value or any(c.isspace() or c in "\"'$`\\" for c in value):
            raise ValueError(f"task prolog value of {name} must be a plain word: {value!r}")
        lines.append(f'[ -n "${{{name}+set}}" ] || echo "export {name}={value}"')
    lines.append("exit 0")
    return "\n".join(lines) + "\n"


def slurm_conf_lines(paths: ClusterPaths) -> list[str]:
    """slurm.conf's line naming the TaskProlog."""
    return [f"TaskProlog={task_prolog_file(paths)}"]
