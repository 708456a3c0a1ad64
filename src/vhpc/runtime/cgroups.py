"""Node cgroups on cgroup v1 (one hierarchy per controller) and pure v2 (unified).

The v1/v2 difference lives only here (the observe sampler reads counters through
`read_cgroup` too). A `CgroupDriver` creates `<root>/vhpc-<cluster>/<node>`
with a memory limit, a cpuset and a process limit (pids.max), lists the files a process
writes its pid into to join, reads usage and OOM counts, kills every process in it and
removes it. Roots are injectable, so v2 is unit-tested against a temporary directory
laid out like a cgroup2 mount.

Per-job limits (docs/architecture.md): Slurm makes job cgroups below a node's, through
the node's cgroup namespace and its own cgroup mounts (`job_cgroup_mounts`). On v1 they
are `<node>/slurm_<node>/uid_U/job_J/step_S` in the `JOB_CONTROLLERS_V1` hierarchies,
and the OOM kills of their processes come from the kernel log (runtime/oom_log.py). On
v2 the node's processes live in its INIT_LEAF and Slurm's in SLURM_SLICE (no process in
a cgroup that delegates controllers): the node's first init joins the node cgroup to
make the namespace (`namespace_procs`), then `settle` moves it to the leaf and enables
the controllers below. Either way killing, counting and removing a node's cgroup covers
its descendants: `pids` walks them, `remove` goes depth-first.
"""

from __future__ import annotations

import os
import signal
import time
from abc import ABC, abstractmethod
from pathlib import Path

from vhpc.errors import VhpcError
from vhpc.runtime.cgroup_stats import SYS_FS_CGROUP as SYS_FS_CGROUP
from vhpc.runtime.cgroup_stats import CgroupStats as CgroupStats
from vhpc.runtime.cgroup_stats import read_cgroup as read_cgroup
from vhpc.runtime.cgroup_stats import read_v1 as read_v1
from vhpc.runtime.cgroup_stats import read_v2 as read_v2
from vhpc.runtime.namespaces import Mount
from vhpc.runtime.oom_log import KERNEL_OOMS

V1_CONTROLLERS = ("memory", "cpuset", "cpuacct", "pids", "freezer")
#: v1 hierarchies mounted inside a node for Slurm's cgroup plugins (task/cgroup: memory
#: and cpuset; proctrack/cgroup: freezer; jobacct_gather/cgroup: cpuacct).
JOB_CONTROLLERS_V1 = ("memory", "cpuset", "freezer", "cpuacct")
V2_CONTROLLERS = ("cpuset", "memory", "cpu", "pids")


class CgroupDriver(ABC):
    """Operations vhpc needs on a node cgroup; `group` is 'vhpc-<cluster>/<node>'."""

    version: int

    @abstractmethod
    def create(self, group: str, cpus: str, memory: int,
               pids_max: int | None = None) -> list[Path]:
        """Create the cgroup with limits; return the directories made (for the ledger).

        `pids_max` bounds the tasks (processes and threads) in it: a fork bomb stops there.
        """

    @abstractmethod
    def procs_files(self, group: str) -> list[Path]:
        """Files a process writes its pid into to join the cgroup."""

    @abstractmethod
    def pids(self, group: str) -> list[int]:
        """Processes currently in the cgroup."""

    @abstractmethod
    def stats(self, group: str) -> CgroupStats:
        """Usage, limit and OOM count."""

    @abstractmethod
    def dirs(self, group: str) -> list[Path]:
        """Every directory of this cgroup (one per v1 hierarchy, one on v2)."""

    @abstractmethod
    def set_frozen(self, group: str, frozen: bool) -> None:
        """Freeze (a hung node: its processes stop, none exits) or thaw the cgroup and
        the job cgroups below it; nothing if it is gone."""

    def namespace_procs(self, procs_files: list[Path]) -> list[Path]:
        """Files that the process making a node's cgroup namespace joins first (its
        cgroup becomes the namespace's root): on v1 the node's own, `procs_files`."""
        return procs_files

    def settle(self, procs_files: list[Path]) -> None:
        """Once a node's first init runs: nothing on v1 (v2 moves it to its leaf)."""
        return None

    def kill_all(self, group: str, timeout: float = 5.0) -> None:
        """SIGKILL every process in the cgroup until it is empty (thawed first: a frozen
        process does not die of SIGKILL until it is thawed)."""
        try:
            self.set_frozen(group, False)
        except OSError:
            pass
        deadline = time.monotonic() + timeout
        while True:
            pids = self.member_pids(group)
            if not pids:
                return
            if time.monotonic() > deadline:
                raise VhpcError(f"processes {pids[:5]} in cgroup {group} did not die")
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass
            time.sleep(0.02)

    def member_pids(self, group: str) -> list[int]:
        """Every process of the cgroup and of those below it, found the cheapest way
        (kill_all polls this while a node's processes die)."""
        return self.pids(group)

    def remove(self, directory: Path) -> None:
        """Remove one cgroup directory and the cgroups below it (Slurm's job cgroups),
        deepest first (the caller removes a node before its cluster's parent)."""
        for child in reversed(descendants(directory)):
            _rmdir(child)
        _rmdir(directory)


def descendants(directory: Path) -> list[Path]:
    """Every cgroup below `directory`, parents before children (empty if it is gone)."""
    out: list[Path] = []
    for top, dirnames, _ in os.walk(directory):
        out.extend(Path(top) / d for d in sorted(dirnames))
    return out


def _rmdir(directory: Path) -> None:
    try:
        directory.rmdir()
    except FileNotFoundError:
        pass


def _mkdir(d: Path) -> bool:
    """Create a cgroup directory; False if it already existed (made by a parallel create)."""
    try:
        d.mkdir()
    except FileExistsError:
        return False
    return True


def _write(path: Path, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _read_pids(path: Path) -> list[int]:
    try:
        return [int(x) for x in path.read_text().split()]
    except (FileNotFoundError, OSError):
        return []


class CgroupV1(CgroupDriver):
    """cgroup v1: memory, cpuset, cpuacct and pids hierarchies under `root`."""

    version = 1

    def __init__(self, root: Path = Path("/sys/fs/cgroup")) -> None:
        self.root = root
        if root == SYS_FS_CGROUP:  # job processes' OOM kills, from now on (oom_log.py)
            KERNEL_OOMS.start()

    def _dir(self, controller: str, group: str) -> Path:
        return self.root / controller / group

    def dirs(self, group: str) -> list[Path]:
        return [self._dir(c, group) for c in V1_CONTROLLERS if (self.root / c).is_dir()]

    def create(self, group: str, cpus: str, memory: int,
               pids_max: int | None = None) -> list[Path]:
        made: list[Path] = []
        for controller in V1_CONTROLLERS:
            base = self.root / controller
            if not base.is_dir():
                continue
            target = base / group
            for d in [p for p in reversed([target, *target.parents]) if base in p.parents]:
                if _mkdir(d):  # nodes are built in parallel: the parent may race
                    made.append(d)
                    if controller == "cpuset":
                        self._inherit_cpuset(d)
        cpuset = self._dir("cpuset", group)
        if cpuset.exists():
            _write(cpuset / "cpuset.cpus", cpus)
        memdir = self._dir("memory", group)
        _write(memdir / "memory.limit_in_bytes", str(memory))
        pids = self._dir("pids", group)
        if pids_max is not None and pids.is_dir():
            _write(pids / "pids.max", str(pids_max))
        return made

    def _inherit_cpuset(self, d: Path) -> None:
        """A new v1 cpuset is empty: copy cpus and mems from its parent."""
        for name in ("cpuset.cpus", "cpuset.mems"):
            _write(d / name, (d.parent / name).read_text().strip())

    def procs_files(self, group: str) -> list[Path]:
        # a node made before a hierarchy joined V1_CONTROLLERS has no directory in it
        return [d / "cgroup.procs" for d in self.dirs(group) if d.is_dir()]

    def pids(self, group: str) -> list[int]:
        seen: set[int] = set()
        for d in self.dirs(group):
            for cg in (d, *descendants(d)):  # job cgroups below the node's included
                seen.update(_read_pids(cg / "cgroup.procs"))
        return sorted(seen)

    def member_pids(self, group: str) -> list[int]:
        # A node's processes join all its hierarchies (Slurm moves them only below it): the
        # pids one, with no cgroups of Slurm's, finds them all (all five: ~0.5 ms a node);
        # one missing there keeps its other cgroups busy: their rmdir fails and says so.
        for controller in ("pids", *V1_CONTROLLERS):
            d = self._dir(controller, group)
            if d.is_dir():
                return sorted({pid for cg in (d, *descendants(d))
                               for pid in _read_pids(cg / "cgroup.procs")})
        return []

    def stats(self, group: str) -> CgroupStats:
        return read_v1({c: self._dir(c, group) for c in V1_CONTROLLERS},
                       memory_root=self.root / "memory")

    def set_frozen(self, group: str, frozen: bool) -> None:
        state = self._dir("freezer", group) / "freezer.state"
        if state.exists():
            _write(state, "FROZEN" if frozen else "THAWED")


#: v2 node layout. v2 allows processes only in leaves of a subtree that distributes
#: controllers ("no internal processes"), so a node cgroup has two children: `init`, the
#: leaf of the node's own processes (its init, daemons, `vhpc exec`), and `system.slice`,
#: the delegated subtree where Slurm's cgroup/v2 plugin (IgnoreSystemd=yes) makes
#: `slurmstepd.scope/{slurmd,system,job_J/step_S/{slurm,user/task_T}}`; 22.05 makes the
#: scope with a plain mkdir, so the slice must exist before slurmd starts.
INIT_LEAF = "init"
SLURM_SLICE = "system.slice"


class CgroupV2(CgroupDriver):
    """Pure cgroup v2: one unified tree under `root`; nodes laid out as INIT_LEAF and
    SLURM_SLICE below their own cgroup (the limits)."""

    version = 2

    def __init__(self, root: Path = Path("/sys/fs/cgroup")) -> None:
        self.root = root

    def dirs(self, group: str) -> list[Path]:
        return [self.root / group]

    def create(self, group: str, cpus: str, memory: int,
               pids_max: int | None = None) -> list[Path]:
        made = self.make_node_tree(group)
        target = self.root / group
        _write(target / "cpuset.cpus", cpus)
        _write(target / "memory.max", str(memory))
        if (target / "memory.swap.max").exists():
            _write(target / "memory.swap.max", "0")
        if pids_max is not None and "pids" in self._available(self.root):
            _write(target / "pids.max", str(pids_max))
        return made

    def make_node_tree(self, group: str) -> list[Path]:
        """The node cgroup with its INIT_LEAF and SLURM_SLICE children, controllers
        enabled in every ancestor; return the ancestors and node made (the children go
        with the node: `remove` is depth-first).

        The node's own subtree_control stays empty until `settle`: the process that
        makes its cgroup namespace must first join the node cgroup itself.
        """
        made: list[Path] = []
        target = self.root / group
        chain = [d for d in reversed([target, *target.parents]) if self.root in d.parents]
        self._enable_controllers(self.root)
        for d in chain:
            if _mkdir(d):
                made.append(d)
            if d != target:
                self._enable_controllers(d)
        for child in (INIT_LEAF, SLURM_SLICE):
            _mkdir(target / child)
        return made

    @staticmethod
    def _available(d: Path) -> list[str]:
        return (d / "cgroup.controllers").read_text().split()

    def _enable_controllers(self, d: Path) -> None:
        available = self._available(d)
        wanted = [c for c in V2_CONTROLLERS if c in available]
        if wanted:
            _write(d / "cgroup.subtree_control", " ".join(f"+{c}" for c in wanted))

    def procs_files(self, group: str) -> list[Path]:
        return [self.root / group / INIT_LEAF / "cgroup.procs"]

    def namespace_procs(self, procs_files: list[Path]) -> list[Path]:
        """The node cgroup itself (the root of the cgroup namespace its init makes)."""
        return [_node_of(p) / "cgroup.procs" if _node_of(p) != p.parent else p
                for p in procs_files]

    def settle(self, procs_files: list[Path]) -> None:
        """Move every process of the node cgroup into its INIT_LEAF (the init, and a
        child it forked meanwhile), then enable the controllers below the node and in
        SLURM_SLICE, so that Slurm's job cgroups get memory, cpu, cpuset and pids."""
        for leaf_procs in procs_files:
            node = _node_of(leaf_procs)
            if node == leaf_procs.parent:
                continue
            for _ in range(50):  # a process forking right now shows up on the next read
                pids = _read_pids(node / "cgroup.procs")
                if not pids:
                    break
                for pid in pids:
                    try:
                        _write(leaf_procs, str(pid))
                    except ProcessLookupError:  # exited meanwhile
                        pass
            self._enable_controllers(node)
            if (node / SLURM_SLICE).is_dir():
                self._enable_controllers(node / SLURM_SLICE)

    def pids(self, group: str) -> list[int]:
        node = self.root / group
        seen: set[int] = set()
        for cg in (node, *descendants(node)):  # the init leaf and Slurm's job cgroups
            seen.update(_read_pids(cg / "cgroup.procs"))
        return sorted(seen)

    def stats(self, group: str) -> CgroupStats:
        return read_v2(self.root / group)  # hierarchical: the leaf and jobs included

    def set_frozen(self, group: str, frozen: bool) -> None:
        freeze = self.root / group / "cgroup.freeze"
        if freeze.exists():
            _write(freeze, "1" if frozen else "0")

    def kill_all(self, group: str, timeout: float = 5.0) -> None:
        kill_file = self.root / group / "cgroup.kill"
        if kill_file.exists():
            _write(kill_file, "1")
        super().kill_all(group, timeout)


def _node_of(procs_file: Path) -> Path:
    """The node cgroup of a procs file in its INIT_LEAF (else the file's own cgroup)."""
    leaf = procs_file.parent
    return leaf.parent if leaf.name == INIT_LEAF else leaf


#: fstab source of a node's own cgroup mounts (`mount -a` skips a line whose source and
#: target are mounted already, and the host's are "cgroup on /sys/fs/cgroup/<hierarchy>").
CGROUP_SOURCE = "vhpc-cgroup"


#: fstab source of a node's cgroup2 mount (another than the tmpfs's under it).
CGROUP2_SOURCE = "vhpc-cgroup2"
_CGROUP_TMPFS = "mode=755,size=64k,nosuid,nodev,noexec"


def job_cgroup_mounts(root: Path = SYS_FS_CGROUP, version: int = 1) -> list[Mount]:
    """The cgroup filesystems Slurm uses, mounted in a node: made in its cgroup namespace,
    each shows the node's own subtree at its usual place (v1: the hierarchies of
    JOB_CONTROLLERS_V1 at `root/<controller>`; v2: the unified tree at `root`).

    On a tmpfs of the node's own: the kernel refuses a cgroup filesystem on a mount point
    where the same one is mounted (the host's, copied into the node's mount namespace:
    EBUSY, measured for v1 and cgroup2), and the node sees none of the host's cgroups.
    """
    if version == 2:
        return [Mount(str(root), CGROUP_SOURCE, "tmpfs", _CGROUP_TMPFS),
                Mount(str(root), CGROUP2_SOURCE, "cgroup2", "nosuid,nodev,noexec")]
    present = [c for c in JOB_CONTROLLERS_V1 if (root / c).is_dir()]
    if not present:
        return []
    return [
        Mount(str(root), CGROUP_SOURCE, "tmpfs", _CGROUP_TMPFS),
        *(Mount(str(root / c), CGROUP_SOURCE, "cgroup", f"{c},nosuid,nodev,noexec",
                mkdir=True) for c in present),
    ]


def thaw(group: str, root: Path = SYS_FS_CGROUP) -> None:
    """Thaw a cgroup on either version, without a driver (teardown from the ledger: a
    frozen process takes no signal until thawed); nothing where it is not frozen."""
    for state, value in ((root / "freezer" / group / "freezer.state", "THAWED"),
                         (root / group / "cgroup.freeze", "0")):
        try:
            if state.exists():
                _write(state, value)
        except OSError:
            pass


def detect(root: Path = Path("/sys/fs/cgroup")) -> CgroupDriver:
    """v2 if `root` itself is a cgroup2 mount, else v1 if it has a memory hierarchy."""
    if (root / "cgroup.controllers").exists():
        return CgroupV2(root)
    if (root / "memory" / "memory.limit_in_bytes").exists():
        return CgroupV1(root)
    raise VhpcError(f"no usable cgroup hierarchy under {root} (need v1 memory or a v2 mount)")
