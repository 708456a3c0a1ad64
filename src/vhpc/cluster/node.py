"""What a node is made of on the host: its mounts, cgroup, namespace files and target."""

from __future__ import annotations

import os
from pathlib import Path

from vhpc.runtime.namespaces import Mount, NsPaths
from vhpc.runtime.spawn import NODE_PATH, NodeTarget
from vhpc.services import etcd
from vhpc.spec.model import ClusterSpec, NodeSpec
from vhpc.spec.paths import ClusterPaths

PRIVATE_DIRS = ("tmp", "var-tmp", "run")


def cgroup_group(cluster: str, node: str) -> str:
    """The node's cgroup path below each hierarchy's root."""
    return f"{cluster_cgroup(cluster)}/{node}"


def cluster_cgroup(cluster: str) -> str:
    """The cluster's parent cgroup."""
    return f"vhpc-{cluster}"


def resolv_target() -> str:
    """Where /etc/resolv.conf really lives (it may be a symlink into /run)."""
    return os.path.realpath("/etc/resolv.conf")


def node_mounts(paths: ClusterPaths, node: NodeSpec, memory: int) -> list[Mount]:
    """Mounts made once inside a new node, in order."""
    private = paths.node_dir(node.name)
    mounts = [
        Mount("/tmp", str(private / "tmp")),
        Mount("/var/tmp", str(private / "var-tmp")),
        Mount("/run", str(private / "run")),
        Mount("/dev/shm", None, "tmpfs", f"mode=1777,size={memory}"),
        Mount("/run/munge", str(paths.munge_dir), mkdir=True),
        Mount("/etc/hosts", str(paths.etc / "hosts")),
        Mount(resolv_target(), str(paths.etc / "resolv.conf")),
        Mount("/etc/passwd", str(paths.etc / "passwd")),
        Mount("/etc/group", str(paths.etc / "group")),
        Mount("/etc/slurm", str(paths.slurm_etc)),
        Mount("/home", str(paths.home)),
    ]
    return mounts


def prepare_private_dirs(paths: ClusterPaths, node: NodeSpec) -> None:
    """Create the node's private /tmp, /var/tmp and /run on the host side."""
    base = paths.node_dir(node.name)
    for name in PRIVATE_DIRS:
        d = base / name
        d.mkdir(parents=True, exist_ok=True)
        if name != "run":
            d.chmod(0o1777)
    target = resolv_target()
    if target.startswith("/run/"):
        inner = base / "run" / target.removeprefix("/run/")
        inner.parent.mkdir(parents=True, exist_ok=True)
        inner.touch()
    (paths.slurm_spool / node.name).mkdir(parents=True, exist_ok=True)


def node_target(spec: ClusterSpec, paths: ClusterPaths, node: str,
                procs_files: list[Path]) -> NodeTarget:
    """How to run something in `node`."""
    env = {"PATH": NODE_PATH, "SLURM_CONF": str(paths.slurm_conf), "HOSTNAME": node,
           "LANG": "C.UTF-8"}
    env.update(etcd.node_env(spec))  # `etcdctl get --prefix /vhpc/` works in every node
    return NodeTarget(node, NsPaths.under(paths.ns_dir, node), tuple(procs_files), env)
