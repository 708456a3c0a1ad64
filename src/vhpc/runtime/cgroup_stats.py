"""Counters of a node cgroup on either cgroup version (memory, OOM kills, CPU, tasks).

Read by the cgroup drivers (runtime/cgroups.py) and by the observe sampler, which keeps
the cgroup directories of each node and calls `read_cgroup` on them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from vhpc.runtime.oom_log import KERNEL_OOMS, KernelOomLog

SYS_FS_CGROUP = Path("/sys/fs/cgroup")

#: cgroup v1 reports "no limit" as a huge page-aligned number (LONG_MAX rounded down).
_V1_UNLIMITED = 1 << 62


@dataclass(frozen=True)
class CgroupStats:
    """Counters of one cgroup, version-independent."""

    mem_bytes: int = 0
    mem_limit: int | None = None
    mem_peak: int | None = None
    oom_kills: int = 0
    failcnt: int | None = None
    cpu_ns: int = 0
    nprocs: int = 0


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _int(path: Path) -> int | None:
    text = _read(path)
    if text is None:
        return None
    try:
        return int(text.strip())
    except ValueError:
        return None


def _keyed(path: Path, key: str) -> int | None:
    """Value of ``key N`` in a flat-keyed file (memory.events, cpu.stat, oom_control)."""
    text = _read(path)
    if text is None:
        return None
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == key:
            try:
                return int(parts[1])
            except ValueError:
                return None
    return None


def _count_lines(path: Path) -> int | None:
    text = _read(path)
    return None if text is None else sum(1 for line in text.splitlines() if line.strip())


def read_v1(dirs: Mapping[str, Path], kernel_ooms: KernelOomLog = KERNEL_OOMS,
            memory_root: Path = SYS_FS_CGROUP / "memory") -> CgroupStats:
    """Counters from cgroup v1 controller directories (``{"memory": ..., "cpuacct": ...}``).

    OOM kills: the cgroup's own, plus those of processes in cgroups below it (a node's
    Slurm jobs) that `kernel_ooms` saw, when the memory directory is under `memory_root`.
    """
    mem = dirs.get("memory")
    cpu = dirs.get("cpuacct") or dirs.get("cpu,cpuacct") or dirs.get("cpu")
    cpu_ns = (_int(cpu / "cpuacct.usage") if cpu is not None else None) or 0
    procs_dir = mem if mem is not None else cpu
    pids = dirs.get("pids")  # hierarchical: a node's job cgroups count too
    nprocs = (_int(pids / "pids.current") if pids is not None else None) or \
        (_count_lines(procs_dir / "cgroup.procs") if procs_dir is not None else None) or 0
    if mem is None:
        return CgroupStats(cpu_ns=cpu_ns, nprocs=nprocs)
    limit = _int(mem / "memory.limit_in_bytes")
    return CgroupStats(
        mem_bytes=_int(mem / "memory.usage_in_bytes") or 0,
        mem_limit=limit if limit is not None and limit < _V1_UNLIMITED else None,
        mem_peak=_int(mem / "memory.max_usage_in_bytes"),
        oom_kills=(_keyed(mem / "memory.oom_control", "oom_kill") or 0)
        + _kills_below(mem, kernel_ooms, memory_root),
        failcnt=_int(mem / "memory.failcnt"),
        cpu_ns=cpu_ns,
        nprocs=nprocs,
    )


def _kills_below(mem: Path, kernel_ooms: KernelOomLog, memory_root: Path) -> int:
    """OOM kills the kernel logged for cgroups below `mem` (v1 counts them only there)."""
    try:
        group = mem.relative_to(memory_root)
    except ValueError:
        return 0
    return kernel_ooms.below(str(group)) if group.parts else 0


def read_v2(path: Path) -> CgroupStats:
    """Counters from a cgroup v2 directory."""
    limit_text = _read(path / "memory.max")
    limit = None
    if limit_text is not None and limit_text.strip() != "max":
        try:
            limit = int(limit_text.strip())
        except ValueError:
            limit = None
    usage_usec = _keyed(path / "cpu.stat", "usage_usec")
    nprocs = _int(path / "pids.current")
    if nprocs is None:
        nprocs = _count_lines(path / "cgroup.procs")
    return CgroupStats(
        mem_bytes=_int(path / "memory.current") or 0,
        mem_limit=limit,
        mem_peak=_int(path / "memory.peak"),
        oom_kills=_keyed(path / "memory.events", "oom_kill") or 0,
        failcnt=None,
        cpu_ns=(usage_usec or 0) * 1000,
        nprocs=nprocs or 0,
    )


def read_cgroup(ref: Path | Mapping[str, Path] | None) -> CgroupStats:
    """Dispatch: a single directory is cgroup v2, a mapping of controllers is v1."""
    if ref is None:
        return CgroupStats()
    if isinstance(ref, Path):
        return read_v2(ref)
    return read_v1(ref)
