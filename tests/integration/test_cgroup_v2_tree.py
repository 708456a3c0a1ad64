"""The v2 node layout on a real cgroup2 hierarchy: this host's empty one.

A v1 host (as the development machine) has a cgroup2 mount at /sys/fs/cgroup/unified
with no controllers: no limits and no "no internal processes" rule can be shown there
(those are checked against tests/unit/fake_cgroup2.py), but the rest is the kernel's own:
the node's first init making its cgroup namespace from the node cgroup and moving to its
`init` leaf (CgroupV2.settle), the node's cgroup2 mount over a private tmpfs, the node's
view (`0::/init`, its own subtree at the mount, mount root `/` as Slurm 24.11 checks),
Slurm 22.05's cgroup/v2 moves done by hand inside the node, and a node cgroup that
counts, kills (cgroup.kill) and removes everything below it. Skipped where the host has
no such mount (a pure v2 host runs the whole cluster on v2 instead).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from vhpc.runtime import namespaces
from vhpc.runtime.cgroups import INIT_LEAF, SLURM_SLICE, CgroupV2, job_cgroup_mounts
from vhpc.runtime.linux import LinuxRuntime
from vhpc.runtime.namespaces import Mount, NsPaths
from vhpc.runtime.spawn import NodeTarget, node_argv

pytestmark = pytest.mark.privileged

UNIFIED = Path("/sys/fs/cgroup/unified")
NODE = "cgnode0"


def _cgroup2_mounted(path: Path) -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == str(path) and " - cgroup2 " in line for line in f)


needs_unified = pytest.mark.skipif(
    not _cgroup2_mounted(UNIFIED), reason=f"no cgroup2 mount at {UNIFIED} (not a hybrid host)")


class Node:
    """One namespace node on the unified hierarchy, made through the real runtime."""

    def __init__(self, base: Path) -> None:
        self.cluster = f"vhpc-cgtest{os.getpid()}"
        self.group = f"{self.cluster}/{NODE}"
        self.driver = CgroupV2(UNIFIED)
        self.runtime = LinuxRuntime(cgroup_driver=self.driver)
        self.ns_dir = base / "ns"
        self.ns = NsPaths.under(self.ns_dir, NODE)
        self.dir = UNIFIED / self.group

    def boot(self) -> int:
        """The node cgroup (no limits: no controllers here), its namespaces and init."""
        self.driver.make_node_tree(self.group)
        namespaces.make_private_dir(self.ns_dir)
        mounts = [Mount("/proc", "vhpc-proc", "proc", "nosuid,nodev,noexec"),
                  *job_cgroup_mounts(UNIFIED, version=2)]
        record = self.runtime.create_namespaces(self.ns, NODE, self.ns_dir, mounts,
                                                self.driver.procs_files(self.group))
        return record.pid

    def run(self, script: str) -> str:
        """A shell script inside the node (as `vhpc exec` runs one); its stdout."""
        target = NodeTarget(NODE, self.ns, tuple(self.driver.procs_files(self.group)))
        done = subprocess.run(node_argv(target, ["/bin/sh", "-c", script]),
                              capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def teardown(self) -> None:
        """Kill, unpin and remove exactly what boot made."""
        if self.dir.exists():
            self.driver.kill_all(self.group)
            self.driver.remove(self.dir)
        if (UNIFIED / self.cluster).exists():
            (UNIFIED / self.cluster).rmdir()
        namespaces.release_all(self.ns.all())
        namespaces.release(self.ns_dir)


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    made = Node(tmp_path)
    try:
        yield made
    finally:
        made.teardown()
    assert not (UNIFIED / made.cluster).exists()
    with open("/proc/self/mountinfo") as f:
        assert str(made.ns_dir) not in f.read()


def _cgroup_of(pid: int) -> str:
    """The unified line of /proc/<pid>/cgroup (host view)."""
    text = Path(f"/proc/{pid}/cgroup").read_text()
    return next(line for line in text.splitlines() if line.startswith("0::"))


@needs_unified
def test_init_makes_the_namespace_from_the_node_cgroup_then_lives_in_its_leaf(
        node: Node) -> None:
    init = node.boot()
    assert _cgroup_of(init) == f"0::/{node.group}/{INIT_LEAF}"
    # the init and the `sleep` it forks as it starts its loop (raced with settle, which
    # moves every process of the node cgroup, not just the init)
    pids = node.driver.pids(node.group)
    assert init in pids
    assert {_cgroup_of(p) for p in pids} == {f"0::/{node.group}/{INIT_LEAF}"}
    assert (node.dir / "cgroup.procs").read_text() == ""  # settle emptied the node
    seen = node.run(
        f"grep ^0:: /proc/self/cgroup; ls {UNIFIED}; "
        f"awk '$5 == \"{UNIFIED}\" {{print $4, $(NF-2), $(NF-1)}}' /proc/self/mountinfo")
    lines = seen.splitlines()
    assert lines[0] == f"0::/{INIT_LEAF}"  # the node's namespace root is its cgroup
    assert {INIT_LEAF, SLURM_SLICE, "cgroup.procs"} <= set(lines[1:-3])
    # the host's, then the node's tmpfs, then its cgroup2 (root "/": 24.11's check)
    assert lines[-2:] == ["/ tmpfs vhpc-cgroup", "/ cgroup2 vhpc-cgroup2"]


@needs_unified
def test_slurm_moves_inside_the_node_are_counted_killed_and_removed(node: Node) -> None:
    init = node.boot()
    scope = f"{UNIFIED}/{SLURM_SLICE}/slurmstepd.scope"
    # what 22.05's cgroup/v2 does for slurmd (mkdir the scope, move to scope/slurmd) and
    # a step's task (job_7/step_0/user/task_0), by hand; the sleeps stand for them
    park = "sh -c 'echo $$ > {}/cgroup.procs; exec sleep 300' </dev/null >/dev/null 2>&1 &"
    node.run(f"mkdir {scope} {scope}/slurmd && mkdir -p {scope}/job_7/step_0/user/task_0"
             f" || exit 1; {park.format(scope + '/slurmd')} "
             f"{park.format(scope + '/job_7/step_0/user/task_0')}")

    def places() -> set[str]:
        return {_cgroup_of(p).split(node.group, 1)[1] for p in node.driver.pids(node.group)}

    deadline = time.monotonic() + 10
    while len(places()) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert places() == {f"/{INIT_LEAF}", f"/{SLURM_SLICE}/slurmstepd.scope/slurmd",
                        f"/{SLURM_SLICE}/slurmstepd.scope/job_7/step_0/user/task_0"}
    assert init in node.driver.pids(node.group)
    node.driver.kill_all(node.group)  # cgroup.kill: the whole subtree
    assert node.driver.pids(node.group) == []
    node.driver.remove(node.dir)  # depth-first through Slurm's cgroups
    assert not node.dir.exists()
