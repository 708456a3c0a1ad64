"""The real Runtime: iproute2, util-linux and cgroupfs on this host."""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
import time
from pathlib import Path

from vhpc.errors import VhpcError
from vhpc.runtime import (
    cgroups,
    link_delete,
    namespaces,
    neighbours,
    network,
    priority,
    proc,
    spawn,
)
from vhpc.runtime.cgroups import CgroupDriver, CgroupStats
from vhpc.runtime.namespaces import Mount, NsPaths
from vhpc.runtime.network import LeafSpec, VethSpec
from vhpc.runtime.proc import ProcessRecord
from vhpc.runtime.spawn import NodeTarget


class LinuxRuntime:
    """Implements :class:`vhpc.runtime.Runtime` on a real Linux host (v1 or v2 cgroups)."""

    def __init__(self, cgroup_driver: CgroupDriver | None = None) -> None:
        self.cgroups = cgroup_driver or cgroups.detect()
        self.cgroup_version = self.cgroups.version

    def make_private_dir(self, path: Path) -> None:
        namespaces.make_private_dir(path)

    def release_mounts(self, paths: list[Path]) -> None:
        namespaces.release_all(paths)

    def create_bridge(self, name: str, address: ipaddress.IPv4Interface) -> None:
        network.create_bridge(name, address)

    def delete_links(self, names: list[str]) -> None:
        failed = link_delete.delete_links([n for n in names if network.link_exists(n)])
        left = [n for n in failed if network.link_exists(n)]
        if left:
            raise VhpcError(f"could not delete {len(left)} links ({', '.join(left[:3])}): "
                            f"{os.strerror(failed[left[0]])}")

    def create_leaves(self, leaves: list[LeafSpec]) -> None:
        network.create_leaves(leaves)

    def claim_neighbours(self, holder: str, entries: int) -> None:
        neighbours.claim(holder, entries)

    def release_neighbours(self, holder: str) -> None:
        neighbours.release(holder)

    def create_namespaces(self, ns: NsPaths, hostname: str, ns_dir: Path,
                          mounts: list[Mount], cgroup_procs: list[Path]) -> ProcessRecord:
        # v2: the init makes the cgroup namespace from the node cgroup, then moves to its
        # leaf (runtime/cgroups.py CgroupV2.settle); v1: the node cgroup throughout
        record = namespaces.create(ns, hostname, ns_dir, mounts,
                                   self.cgroups.namespace_procs(cgroup_procs))
        try:
            self.cgroups.settle(cgroup_procs)
        except OSError:
            os.kill(record.pid, signal.SIGKILL)
            raise
        return record

    def revive_init(self, ns: NsPaths, cgroup_procs: list[Path]) -> ProcessRecord:
        return namespaces.revive(ns, cgroup_procs)

    def create_veths(self, veths: list[VethSpec]) -> None:
        network.create_veths(veths)

    def create_cgroup(self, group: str, cpus: str, memory: int,
                      pids_max: int | None = None) -> list[Path]:
        return self.cgroups.create(group, cpus, memory, pids_max)

    def remove_cgroup_dir(self, path: Path) -> None:
        self.cgroups.remove(path)

    def cgroup_dirs(self, group: str) -> list[Path]:
        return self.cgroups.dirs(group)

    def cgroup_procs_files(self, group: str) -> list[Path]:
        return self.cgroups.procs_files(group)

    def cgroup_pids(self, group: str) -> list[int]:
        return self.cgroups.pids(group)

    def cgroup_stats(self, group: str) -> CgroupStats:
        return self.cgroups.stats(group)

    def kill_cgroup(self, group: str) -> None:
        self.cgroups.kill_all(group)

    def spawn(self, target: NodeTarget, command: list[str], log_file: Path,
              env: dict[str, str] | None = None
              ) -> tuple[subprocess.Popen[bytes] | None, ProcessRecord]:
        return spawn.spawn(target, command, log_file, env)

    def weight_session(self, record: ProcessRecord, nice: int) -> None:
        priority.weight_session(record.pid, nice)

    def is_alive(self, record: ProcessRecord) -> bool:
        return proc.is_alive(record)

    def pidfd(self, record: ProcessRecord) -> int | None:
        """A pidfd that becomes readable when the process exits (None if it is gone)."""
        try:
            fd = os.pidfd_open(record.pid)
        except ProcessLookupError:
            return None
        if not proc.is_alive(record):  # the pid was reused before we opened it
            os.close(fd)
            return None
        return fd

    def terminate(self, records: list[ProcessRecord], grace: float = 5.0) -> None:
        if grace > 0:
            proc.terminate(records, grace)
            return
        for record in records:  # no time to handle a SIGTERM: one signal, one check each
            if proc.signal_record(record, signal.SIGKILL):
                proc.reap_if_child(record.pid)

    def wait_gone(self, records: list[ProcessRecord], timeout: float) -> list[ProcessRecord]:
        """Wait up to `timeout` s for these processes to end, reaping those that are this
        process's children (a killed node init ends only once every process of its PID
        namespace is reaped, e.g. its slurmd, a child of the manager); those still alive."""
        deadline = time.monotonic() + timeout
        while True:
            alive = proc.reap_ended(records)
            if not alive or time.monotonic() >= deadline:
                return alive
            time.sleep(0.02)
