"""munged: one daemon per cluster, on the controller node, with the cluster's own key."""

from __future__ import annotations

from vhpc.services.base import RPC_PATH_NICE, DaemonSpec
from vhpc.spec.paths import ClusterPaths

KEY_SIZE = 1024


def daemon(paths: ClusterPaths, node: str, threads: int = 4) -> DaemonSpec:
    """munged in the foreground, socket and key in the cluster's state directory.

    One munged serves every daemon of the cluster (each Slurm RPC is an encode and a
    decode): `threads` grows with the node count (spec/scale.py munge_threads)."""
    argv = (
        "munged", "--foreground", "--force",
        f"--socket={paths.munge_socket}",
        f"--key-file={paths.munge_key}",
        f"--pid-file={paths.run / 'munged.pid'}",
        f"--seed-file={paths.run / 'munged.seed'}",
        f"--log-file={paths.log / 'munged.log'}",
        f"--num-threads={threads}",
    )
    return DaemonSpec("munged", node, argv, paths.daemon_log("munged", node),
                      session_nice=RPC_PATH_NICE)
