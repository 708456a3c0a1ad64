"""What a node is made of on the host: its mounts, cgroup, namespace files and target.

Isolation of a node (docs/security.md): its own PID namespace with its own /proc (jobs see
only the node's processes), its own /tmp, /var/tmp, /run and /dev/shm (a tmpfs of half
the node's memory, gone with the node), and a pids.max on its cgroup.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from vhpc.cluster.ledger import Kind, Ledger
from vhpc.runtime import Runtime, devices
from vhpc.runtime.namespaces import Mount, NsPaths
from vhpc.runtime.proc import ProcessRecord
from vhpc.runtime.spawn import NODE_PATH, NodeTarget
from vhpc.services import etcd, openmpi
from vhpc.spec import gpus
from vhpc.spec.model import ClusterSpec, NodeSpec, ShareSpec
from vhpc.spec.paths import ClusterPaths

PRIVATE_DIRS = ("tmp", "var-tmp", "run")
#: fstab sources of the node's own /dev/shm and /proc. `mount -a` skips a line whose
#: source and target are already mounted: "tmpfs on /dev/shm" and "proc on /proc" are
#: (the host's), so these names must differ from the host's for the mount to happen.
SHM_SOURCE = "vhpc-shm"
PROC_SOURCE = "vhpc-proc"
MQUEUE_SOURCE = "vhpc-mqueue"  # a GPU node's own /dev (private_dev_mounts)


def cgroup_group(cluster: str, node: str) -> str:
    """The node's cgroup path below each hierarchy's root."""
    return f"{cluster_cgroup(cluster)}/{node}"


def cluster_cgroup(cluster: str) -> str:
    """The cluster's parent cgroup."""
    return f"vhpc-{cluster}"


def resolv_target() -> str:
    """Where /etc/resolv.conf really lives (it may be a symlink into /run)."""
    return os.path.realpath("/etc/resolv.conf")


def init_key(node: str) -> str:
    """Ledger key of a node's init process (pid 1 of its PID namespace)."""
    return f"init@{node}"


def is_init_key(key: str) -> bool:
    """True for the ledger key of a node init (not a supervised daemon)."""
    return key.startswith("init@")


def shm_size(memory: int) -> int:
    """The node's /dev/shm size: half its memory, so a full /dev/shm leaves its daemons room."""
    return max(memory // 2, 1 << 20)


def node_mounts(paths: ClusterPaths, node: NodeSpec, memory: int,
                shares: Sequence[ShareSpec] = ()) -> list[Mount]:
    """Mounts made once inside a new node, in order (run by the node's init, in its PID
    namespace, which the new /proc shows)."""
    private = paths.node_dir(node.name)
    mounts = [
        Mount("/proc", PROC_SOURCE, "proc", "nosuid,nodev,noexec"),
        # Before the node's private /tmp, /var/tmp and /run hide the host's: a share of
        # the host's /tmp/work is bound from the host's /tmp.
        *share_mounts(paths, node, shares),
        *private_dev_mounts(paths, node),
        # rbind: a share at /tmp/work was bound inside the private directory just above
        Mount("/tmp", str(private / "tmp"), *_rbind_if(shares, "/tmp")),
        Mount("/var/tmp", str(private / "var-tmp"), *_rbind_if(shares, "/var/tmp")),
        Mount("/run", str(private / "run")),
        Mount("/dev/shm", SHM_SOURCE, "tmpfs", f"mode=1777,nosuid,nodev,size={shm_size(memory)}"),
        Mount("/run/munge", str(paths.munge_dir), mkdir=True),
        Mount("/etc/hosts", str(paths.etc / "hosts")),
        Mount(resolv_target(), str(paths.etc / "resolv.conf")),
        Mount("/etc/passwd", str(paths.etc / "passwd")),
        Mount("/etc/group", str(paths.etc / "group")),
        Mount("/etc/slurm", str(paths.slurm_etc)),
        Mount("/home", str(paths.home)),
    ]
    return mounts


#: Node directories that are the node's own (PRIVATE_DIRS): a share inside one is bound
#: into the node's private directory, which is then mounted there with its submounts.
PRIVATE_SHARE_ROOTS = {"/tmp": "tmp", "/var/tmp": "var-tmp"}


def _private_root(path: str) -> str | None:
    return next((root for root in PRIVATE_SHARE_ROOTS if path.startswith(root + "/")), None)


def _rbind_if(shares: Sequence[ShareSpec], root: str) -> tuple[str, str]:
    """A private directory's mount: `rbind` when a share lies inside it, else a bind."""
    if any(_private_root(s.path) == root for s in shares):
        return ("none", "rbind")
    return ("bind", "")


def share_mounts(paths: ClusterPaths, node: NodeSpec,
                 shares: Sequence[ShareSpec]) -> list[Mount]:
    """The cluster's shared host directories, read-write at their node paths. A path in
    the host's tree has its mount point made by site_files.make_share_points; one inside
    the node's own /tmp or /var/tmp is bound into the node's private directory."""
    out = []
    for share in shares:
        root = _private_root(share.path)
        if root is None:
            out.append(Mount(share.path, share.host))
        else:
            inside = paths.node_dir(node.name) / PRIVATE_SHARE_ROOTS[root]
            out.append(Mount(str(inside) + share.path[len(root):], share.host, mkdir=True))
    return out


def is_private_share(share: ShareSpec) -> bool:
    """Whether a share's node path is inside a node's own /tmp or /var/tmp."""
    return _private_root(share.path) is not None


def private_dev_mounts(paths: ClusterPaths, node: NodeSpec) -> list[Mount]:
    """A node with fake GPUs gets its own /dev (runtime/devices.py) and message queues;
    before /dev/shm, which is mounted inside it. Others keep the host's /dev.

    Its /dev/pts is the host's, as in every node (so the terminal `vhpc exec` passes in
    has its name there): bound into the directory first, then carried over /dev by rbind.
    """
    if node.gpus <= 0:
        return []
    dev = paths.node_dir(node.name) / "dev"
    return [
        Mount(str(dev / "pts"), "/dev/pts"),
        Mount("/dev", str(dev), "none", "rbind"),
        Mount("/dev/mqueue", MQUEUE_SOURCE, "mqueue", "nosuid,nodev,noexec"),
    ]


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
    if node.gpus > 0:
        devices.make_dev_dir(base / "dev", devices.node_dev_entries(
            gpus.device_names(node.gpus)))


def node_target(spec: ClusterSpec, paths: ClusterPaths, node: str,
                procs_files: list[Path], prepare: Callable[[], None] | None = None
                ) -> NodeTarget:
    """How to run something in `node` (`prepare`: run before each spawn)."""
    env = {"PATH": NODE_PATH, "SLURM_CONF": str(paths.slurm_conf), "HOSTNAME": node,
           "LANG": "C.UTF-8"}
    env.update(etcd.node_env(spec))  # `etcdctl get --prefix /vhpc/` works in every node
    env.update(openmpi.JOB_ENV)  # `vhpc exec ... mpirun`: ranks yield, as in Slurm jobs
    return NodeTarget(node, NsPaths.under(paths.ns_dir, node), tuple(procs_files), env,
                      prepare)


class NodeInits:
    """The init (pid 1) of each node, as the ledger records it; revived when dead.

    An init dies with every process of its node (`node stop`, a lost node, a kill of the
    whole cgroup): the next start gives the node a new PID namespace and init, in the
    node's same network, hostname and mounts.
    """

    def __init__(self, ledger: Ledger, runtime: Runtime, ns_dir: Path) -> None:
        self.ledger = ledger
        self.runtime = runtime
        self.ns_dir = ns_dir
        self._lock = threading.Lock()
        self._records: dict[str, ProcessRecord] | None = None

    def _known(self) -> dict[str, ProcessRecord]:
        if self._records is None:  # once, from the ledger (a manager that adopts)
            self._records = {
                e.node: ProcessRecord(int(e.data.get("pid", 0)), int(e.data.get("starttime", -1)))
                for e in self.ledger.entries(Kind.PROCESS) if is_init_key(e.ident)}
        return self._records

    def record(self, node: str, init: ProcessRecord) -> None:
        """Write a node's init to the ledger."""
        self.ledger.add(Kind.PROCESS, init_key(node), node, **init.to_dict())
        with self._lock:
            self._known()[node] = init

    def ensure(self, node: str, cgroup_procs: list[Path]) -> None:
        """Make sure the node has a live init before something is started in it."""
        ns = NsPaths.under(self.ns_dir, node)
        with self._lock:
            record = self._known().get(node)
            if record is not None and self.runtime.is_alive(record):
                return
            if record is None and not ns.pid.exists():
                return  # a node made before nodes had PID namespaces
        self.record(node, self.runtime.revive_init(ns, cgroup_procs))
