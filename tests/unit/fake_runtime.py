"""A fake of vhpc's Runtime adapter: records resources instead of touching the kernel.

It implements the `vhpc.runtime.Runtime` Protocol (mypy checks that), so it cannot drift.
"""

from __future__ import annotations

import ipaddress
import itertools
import subprocess
from pathlib import Path

from vhpc.runtime import Runtime
from vhpc.runtime.cgroups import CgroupStats
from vhpc.runtime.namespaces import Mount, NsPaths
from vhpc.runtime.network import LeafSpec, VethSpec
from vhpc.runtime.proc import ProcessRecord
from vhpc.runtime.spawn import NodeTarget


class FakeRuntime:
    """In-memory kernel: sets of links, mounts, cgroups and processes."""

    cgroup_version = 2

    def __init__(self, fail_on_namespace: str | None = None) -> None:
        self.links: set[str] = set()
        self.neighbour_claims: dict[str, int] = {}
        self.mounts: set[Path] = set()
        self.cgroups: dict[str, list[int]] = {}
        self.processes: dict[int, ProcessRecord] = {}
        self.spawned: list[tuple[str, list[str]]] = []
        self.session_nices: dict[int, int] = {}  # pid -> the nice of its session's weight
        self.pids_max: dict[str, int | None] = {}
        self.revived: list[str] = []
        #: a node init's pid -> the processes of its PID namespace, which end with it
        self.ends_with: dict[int, list[int]] = {}
        self.fail_on_namespace = fail_on_namespace
        self._pids = itertools.count(1000)

    def make_private_dir(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self.mounts.add(path)

    def release_mounts(self, paths: list[Path]) -> None:
        self.mounts.difference_update(paths)

    def create_bridge(self, name: str, address: ipaddress.IPv4Interface) -> None:
        self.links.add(name)

    def delete_links(self, names: list[str]) -> None:
        self.links.difference_update(names)

    def create_leaves(self, leaves: list[LeafSpec]) -> None:
        self.links.update(name for leaf in leaves for name in (leaf.name, leaf.up))

    def claim_neighbours(self, holder: str, entries: int) -> None:
        self.neighbour_claims[holder] = entries

    def release_neighbours(self, holder: str) -> None:
        self.neighbour_claims.pop(holder, None)

    def create_namespaces(self, ns: NsPaths, hostname: str, ns_dir: Path,
                          mounts: list[Mount], cgroup_procs: list[Path]) -> ProcessRecord:
        if hostname == self.fail_on_namespace:
            raise OSError(f"injected failure creating {hostname}")
        self.mounts.update(ns.all())
        pid = next(self._pids)  # the node's init, in its cgroup like the real one
        record = ProcessRecord(pid, pid * 10)
        self.processes[pid] = record
        self.cgroups.setdefault(str(cgroup_procs[0].parent), []).append(pid)
        return record

    def revive_init(self, ns: NsPaths, cgroup_procs: list[Path]) -> ProcessRecord:
        pid = next(self._pids)
        record = ProcessRecord(pid, pid * 10)
        self.processes[pid] = record
        self.cgroups.setdefault(str(cgroup_procs[0].parent), []).append(pid)
        self.revived.append(ns.pid.stem)
        return record

    def create_veths(self, veths: list[VethSpec]) -> None:
        self.links.update(v.host_name for v in veths)

    def create_cgroup(self, group: str, cpus: str, memory: int,
                      pids_max: int | None = None) -> list[Path]:
        self.pids_max[group] = pids_max
        self.cgroups[group] = []
        parent = group.rsplit("/", 1)[0]
        self.cgroups.setdefault(parent, [])
        return [Path(group)]

    def remove_cgroup_dir(self, path: Path) -> None:
        self.cgroups.pop(str(path), None)

    def cgroup_dirs(self, group: str) -> list[Path]:
        return [Path(group)]

    def cgroup_procs_files(self, group: str) -> list[Path]:
        return [Path(group) / "cgroup.procs"]

    def cgroup_pids(self, group: str) -> list[int]:
        return list(self.cgroups.get(group, []))

    def cgroup_stats(self, group: str) -> CgroupStats:
        return CgroupStats(nprocs=len(self.cgroups.get(group, [])))

    def kill_cgroup(self, group: str) -> None:
        for pid in self.cgroups.get(group, []):
            self.processes.pop(pid, None)
        if group in self.cgroups:
            self.cgroups[group] = []

    def weight_session(self, record: ProcessRecord, nice: int) -> None:
        self.session_nices[record.pid] = nice

    def spawn(self, target: NodeTarget, command: list[str], log_file: Path,
              env: dict[str, str] | None = None
              ) -> tuple[subprocess.Popen[bytes] | None, ProcessRecord]:
        if target.prepare is not None:
            target.prepare()
        pid = next(self._pids)
        record = ProcessRecord(pid, pid * 10)
        self.processes[pid] = record
        group = str(target.cgroup_procs[0].parent)
        self.cgroups.setdefault(group, []).append(pid)
        self.spawned.append((target.name, command))
        return None, record

    def is_alive(self, record: ProcessRecord) -> bool:
        return self.processes.get(record.pid) == record

    def pidfd(self, record: ProcessRecord) -> int | None:
        return None  # exits are driven by the test through Supervisor._on_exit

    def terminate(self, records: list[ProcessRecord], grace: float = 5.0) -> None:
        for record in records:
            if self.processes.get(record.pid) == record:
                del self.processes[record.pid]
                for pids in self.cgroups.values():
                    if record.pid in pids:
                        pids.remove(record.pid)
                for pid in self.ends_with.get(record.pid, []):  # its PID namespace ends
                    self.processes.pop(pid, None)

    def wait_gone(self, records: list[ProcessRecord], timeout: float) -> list[ProcessRecord]:
        return [r for r in records if self.is_alive(r)]

    def crash(self, pid: int) -> None:
        """Make a process die as if killed."""
        self.terminate([self.processes[pid]])

    def owned(self) -> dict[str, object]:
        """Everything still held (empty after a clean teardown)."""
        return {k: v for k, v in {"links": self.links, "mounts": self.mounts,
                                  "cgroups": self.cgroups, "processes": self.processes,
                                  "neighbour_claims": self.neighbour_claims}.items()
                if v}


_check: type[Runtime] = FakeRuntime
