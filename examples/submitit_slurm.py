"""submitit (from PyPI, unchanged) submitting Python functions to a vhpc cluster.

submitit calls the host's own `sbatch`, `scancel` and `sacct`; `Cluster.env()` points them
at the virtual cluster (SLURM_CONF). The cluster has accounting (slurmdbd), so submitit
reads each job's state from `sacct` as on a real site.

Submitted from the host as root, the jobs run as root inside the nodes, with this very
interpreter (sys.executable), which root can read even under a 0700 /root. The submitit
folder must be visible to the nodes: the cluster's shared home is (same path on host and
nodes); the host's /tmp is not (every node has its own /tmp).

    sudo .venv/bin/python examples/submitit_slurm.py            # boots, runs, tears down
    sudo .venv/bin/python examples/submitit_slurm.py --attach vhpc   # use a running cluster
"""

from __future__ import annotations

import argparse
import logging
import os
import socket

import submitit

from vhpc import Cluster


def where_am_i(x: int) -> tuple[str, str, int]:
    """Runs inside a compute node: its hostname, the job's node list, and some work."""
    return socket.gethostname(), os.environ.get("SLURM_JOB_NODELIST", "?"), x * x


def submit_all(cluster: Cluster, count: int) -> list[tuple[str, str, int]]:
    """Submit `count` one-node jobs with submitit and return their results."""
    os.environ.update(cluster.env())  # the host's sbatch/sacct/scancel now talk to it
    executor = submitit.AutoExecutor(folder=cluster.home / "submitit" / "%j", cluster="slurm")
    executor.update_parameters(timeout_min=5, slurm_partition=cluster.spec.partition,
                               nodes=1, tasks_per_node=1)
    jobs = executor.map_array(where_am_i, list(range(count))) if count > 1 else \
        [executor.submit(where_am_i, 0)]
    return [job.result() for job in jobs]


def main() -> None:
    """Boot a 2-node cluster (or attach to one), run submitit jobs, print where they ran."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default=None, help="name of the cluster to boot")
    parser.add_argument("--attach", default=None, help="use this running cluster instead")
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--jobs", type=int, default=4)
    args = parser.parse_args()
    logging.getLogger("submitit").setLevel(logging.ERROR)  # its progress chatter
    cluster = Cluster.attach(args.attach) if args.attach else \
        Cluster(name=args.name, nodes=args.nodes)
    with cluster:  # boots a new cluster and tears it down; an attached one stays up
        for host, nodelist, value in submit_all(cluster, args.jobs):
            print(f"{host} {nodelist} {value}")


if __name__ == "__main__":
    main()
