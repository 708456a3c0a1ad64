"""Waits, limits and Slurm settings as functions of the node count (pure).

On one host every node shares the same few cores: starting 1024 slurmds, registering
them and answering their first pings takes minutes on 2 busy cores where 16 take a
second. Fixed waits (30 s for etcd, 120 s for the nodes) then fail a boot that was only
slow, so each wait here is a base (what a small cluster needs on a loaded host) plus a
per-node share measured at 1024 nodes (docs/PERFORMANCE.md, "Scale"), with headroom.
"""

from __future__ import annotations

#: Seconds per compute node that the boot may take beyond its base (measured: 1024
#: nodes idle ~60-90 s after their slurmd started on 2 cores; the floor takes ~58 s).
BOOT_PER_NODE = 0.3
BOOT_BASE = 120.0
SERVICE_BASE = {"munged": 15.0, "slurmctld": 60.0, "etcd": 30.0}
#: Service daemons start while the compute nodes are made, so a big cluster slows them.
SERVICE_PER_NODE = 0.1
#: Neighbour (ARP) entries a cluster holds per node: each node knows its gateway, the
#: controller and the DNS node; the controller and the host know every node; one spare.
NEIGHBOURS_PER_NODE = 6
NEIGHBOURS_BASE = 64
#: Slurm's node timeout: a ping round over N nodes on loaded cores must not mark busy
#: nodes "not responding" (each ping is a munge-signed RPC on the shared cores).
SLURMD_TIMEOUT_BASE = 30
SLURMD_TIMEOUT_NODES_PER_SECOND = 8
SLURMD_TIMEOUT_MAX = 300
MUNGE_THREADS_MAX = 32


def boot_timeout(computes: int) -> float:
    """Seconds `up` waits for every compute node to be idle."""
    return BOOT_BASE + BOOT_PER_NODE * computes


def add_timeout(adding: int) -> float:
    """Seconds `node add` waits for the new nodes to be idle."""
    return 60.0 + BOOT_PER_NODE * adding


def service_timeout(daemon: str, computes: int) -> float:
    """Seconds the boot waits for a service daemon (munged, slurmctld, etcd) to answer."""
    return SERVICE_BASE.get(daemon, 30.0) + SERVICE_PER_NODE * computes


def manager_boot_timeout(computes: int) -> float:
    """Seconds `vhpc up` follows the manager's boot before giving up: the nodes' wait,
    the services' and the time to make N nodes (~0.1 s each), never under 10 minutes."""
    return max(600.0, boot_timeout(computes) + service_timeout("slurmctld", computes)
               + 0.2 * computes)


def poll_interval(nodes: int) -> float:
    """Seconds between two polls of Slurm's node states while waiting for `nodes` nodes:
    one `sinfo` over 1024 nodes is real work for a slurmctld they keep busy; a small
    cluster's nodes are idle ~0.07-0.3 s after their slurmd started: polled every ~0.02 s
    (from 0.05 s: `up -n 1` 0.77 -> 0.71 s, `up -n 16` 1.16 -> 1.13 s, A/B of 10 rounds)."""
    return min(2.0, 0.02 + nodes / 1000)


#: up to this many nodes a wait for idle nodes first waits for their slurmds to listen
LISTEN_WAIT_MAX_NODES = 64


def waits_for_listening_slurmds(nodes: int) -> bool:
    """Whether the wait for `nodes` idle nodes first asks the kernel, in each node, whether
    its slurmd listens (a netlink query per node per poll: cheap for a small cluster)
    before it polls Slurm (each poll a process, a credential and an RPC)."""
    return nodes <= LISTEN_WAIT_MAX_NODES


def munge_threads(computes: int) -> int:
    """Threads of the cluster's one munged (every Slurm RPC of every node is signed and
    checked there; 4 threads left `sinfo` waiting over 15 s at 1024 nodes)."""
    return min(MUNGE_THREADS_MAX, 4 + computes // 64)


def neighbour_entries(nodes: int) -> int:
    """Entries of the host's neighbour (ARP) table a cluster of `nodes` nodes needs."""
    return NEIGHBOURS_BASE + NEIGHBOURS_PER_NODE * nodes


def slurmd_timeout(max_nodes: int) -> int:
    """Slurm's SlurmdTimeout for a cluster of up to `max_nodes` compute nodes."""
    share = max_nodes // SLURMD_TIMEOUT_NODES_PER_SECOND
    return min(SLURMD_TIMEOUT_MAX, max(SLURMD_TIMEOUT_BASE, share))
