"""Node cgroups on cgroup v1 (one hierarchy per controller) and pure v2 (unified).

The v1/v2 difference lives only here (the observe sampler reads counters through
`read_cgroup` too). A `CgroupDriver` creates `<root>/vhpc-<cluster>/<node>`
with a memory limit, a cpuset and a process limit (pids.max), lists the files a process
writes its pid into to join, reads usage and OOM counts, kills every process in it and
removes it. Roots are injectable, so v2 is unit-tested against a temporary directory
laid out like a cgroup2 mount.

Per-job limits (docs/architecture.md): on v1 Slurm makes job cgroups below a node's
(`<node>/slurm_<node>/uid_U/job_J/step_S`, through the node's cgroup namespace and its
own mounts of the `JOB_CONTROLLERS_V1` hierarchies), so killing, counting and removing a
node's cgroup covers its descendants: `pids` walks them, `remove` goes depth-first, and
the OOM kills of their processes come from the kernel log (runtime/oom_log.py).
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

    def kill_all(self, group: str, timeout: float = 5.0) -> None:
        """SIGKILL every process in the cgroup until it is empty (thawed first: a frozen
        process does not die of SIGKILL until it is thawed)."""
        try:
            self.set_frozen(group, False)
        except OSError:
            pass
        deadline = time.monotonic() + timeout
        while True:
            pids = self.pids(group)
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

    def stats(self, group: str) -> CgroupStats:
        return read_v1({c: self._dir(c, group) for c in V1_CONTROLLERS},
                       memory_root=self.root / "memory")

    def set_frozen(self, group: str, frozen: bool) -> None:
        state = self._dir("freezer", group) / "freezer.state"
        if state.exists():
            _write(state, "FROZEN" if frozen else "THAWED")


class CgroupV2(CgroupDriver):
    """Pure cgroup v2: one unified tree under `root`."""

    version = 2

    def __init__(self, root: Path = Path("/sys/fs/cgroup")) -> None:
        self.root = root

    def dirs(self, group: str) -> list[Path]:
        return [self.root / group]

    def create(self, group: str, cpus: str, memory: int,
               pids_max: int | None = None) -> list[Path]:
        made: list[Path] = []
        target = self.root / group
        chain = [d for d in reversed([target, *target.parents]) if self.root in d.parents]
        self._enable_controllers(self.root)
        for d in chain:
            if _mkdir(d):
                made.append(d)
            if d != target:
                self._enable_controllers(d)
        _write(target / "cpuset.cpus", cpus)
        _write(target / "memory.max", str(memory))
        if (target / "memory.swap.max").exists():
            _write(target / "memory.swap.max", "0")
        if pids_max is not None and "pids" in self._available(self.root):
            _write(target / "pids.max", str(pids_max))
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
        return [self.root / group / "cgroup.procs"]

    def pids(self, group: str) -> list[int]:
        return _read_pids(self.root / group / "cgroup.procs")

    def stats(self, group: str) -> CgroupStats:
        return read_v2(self.root / group)

    def set_frozen(self, group: str, frozen: bool) -> None:
        freeze = self.root / group / "cgroup.freeze"
        if freeze.exists():
            _write(freeze, "1" if frozen else "0")

    def kill_all(self, group: str, timeout: float = 5.0) -> None:
        kill_file = self.root / group / "cgroup.kill"
        if kill_file.exists():
            _write(kill_file, "1")
        super().kill_all(group, timeout)


#: fstab source of a node's own cgroup mounts (`mount -a` skips a line whose source and
#: target are mounted already, and the host's are "cgroup on /sys/fs/cgroup/<hierarchy>").
CGROUP_SOURCE = "vhpc-cgroup"


def job_cgroup_mounts(root: Path = Path("/sys/fs/cgroup")) -> list[Mount]:
    """The v1 hierarchies Slurm uses, mounted in a node: made in its cgroup namespace,
    each shows the node's own subtree at its usual place.

    On a tmpfs of the node's own: the kernel refuses a hierarchy on a mount point where
    the same hierarchy is mounted (the host's, copied into the node's mount namespace),
    and the node sees none of the host's other cgroups.
    """
    present = [c for c in JOB_CONTROLLERS_V1 if (root / c).is_dir()]
    if not present:
        return []
    return [
        Mount(str(root), CGROUP_SOURCE, "tmpfs", "mode=755,size=64k,nosuid,nodev,noexec"),
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
