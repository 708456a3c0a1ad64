"""A node whose root is an image (`up --image`): the mount plan, pure and tested as text.

In the node's own mount namespace the image's tree is the read-only lower layer of an
overlay, with the node's writable layer under its private directory
(`nodes/<node>/image/{upper,work}`); on it go the host's /dev and /sys, the cluster's
state directory at its own path (Slurm's spool, logs and state, the munge socket), the
workload tools (/opt/vhpc/bin) and then every mount a host-root node gets (its /proc,
private /tmp, /var/tmp, /run, /dev/shm, the cluster's /etc files, /home, cgroup
filesystems), each below the new root. The node's init then pivots into it
(runtime/namespaces.py, the mount whose source is ROOT_SOURCE), so every process
entered into the node later (nsenter --mount) starts in the image. The overlay lives only
in the node's mount namespace: it goes away with the node, and its directories with the
node's private directory (recorded in the ledger with the cluster's state directory).

The `dns` node keeps the host's root: etcd and dnsmasq are the host's packages.
"""

from __future__ import annotations

from pathlib import Path

from vhpc.runtime.namespaces import ROOT_SOURCE, Mount
from vhpc.spec.model import HOST_IMAGE, ClusterSpec, NodeRole, NodeSpec
from vhpc.spec.paths import ClusterPaths

NODE_TOOLS = "/opt/vhpc/bin"
#: The host's resolv.conf target may be a symlink into /run; the image's is a plain file.
IMAGE_RESOLV = "/etc/resolv.conf"


def uses_image(spec: ClusterSpec, node: NodeSpec) -> bool:
    """Whether this node's root is the cluster's image (every node but `dns`)."""
    return spec.image != HOST_IMAGE and node.role is not NodeRole.DNS


def root_dir(paths: ClusterPaths, node: str) -> Path:
    """Where the node's root overlay is mounted (in its own mount namespace only)."""
    return paths.node_dir(node) / "root"


def layer_dirs(paths: ClusterPaths, node: str) -> tuple[Path, Path]:
    """The overlay's upper (the node's writes) and work directories."""
    base = paths.node_dir(node) / "image"
    return base / "upper", base / "work"


def prepare_dirs(paths: ClusterPaths, node: str) -> None:
    """Create the mount point and the overlay's directories (under the node's own dir)."""
    for d in (root_dir(paths, node), *layer_dirs(paths, node)):
        d.mkdir(parents=True, exist_ok=True)


def image_mounts(paths: ClusterPaths, node: str, rootfs: Path, node_mounts: list[Mount],
                 resolv_target: str) -> list[Mount]:
    """The node's mounts with the image as its root: the overlay, what the host gives
    every node, then `node_mounts` (cluster/node.py's, in order) below the new root.

    A target in the cluster's state directory (a share bound into the node's private
    /tmp) is a host path and stays one; the host's resolv.conf target becomes the image's.
    """
    root = root_dir(paths, node)
    upper, work = layer_dirs(paths, node)
    state = str(paths.root)
    out = [
        Mount(str(root), ROOT_SOURCE, "overlay",
              f"lowerdir={rootfs},upperdir={upper},workdir={work}"),
        Mount(f"{root}/dev", "/dev", "none", "rbind"),
        Mount(f"{root}/sys", "/sys", "none", "rbind"),
        Mount(f"{root}{state}", state, mkdir=True),
        Mount(f"{root}{NODE_TOOLS}", NODE_TOOLS, mkdir=True),
    ]
    for mount in node_mounts:
        if mount.target == state or mount.target.startswith(state + "/"):
            out.append(mount)
            continue
        target = IMAGE_RESOLV if mount.target == resolv_target else mount.target
        out.append(Mount(f"{root}{target}", mount.source, mount.fstype, mount.options,
                         mkdir=True))
    return out
