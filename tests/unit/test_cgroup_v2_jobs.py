"""Per-job limits on cgroup v2 hosts, against a directory with cgroup2's rules
(tests/unit/fake_cgroup2.py): the node layout vhpc makes (limits on the node, its
processes in the `init` leaf, a delegated `system.slice`), the moves that make room for
Slurm 22.05's cgroup/v2 plugin, that plugin's own sequence of mkdirs, enables and moves
(src/plugins/cgroup/v2/cgroup_v2.c at slurm-22-05-8-1) inside that layout, and the
rendered cgroup.conf and fstab. A real v2 run needs a v2 host (docs/accounting.md)."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from tests.unit.fake_cgroup2 import FakeCgroup2
from vhpc.runtime.cgroups import (
    CGROUP2_SOURCE,
    CGROUP_SOURCE,
    INIT_LEAF,
    SLURM_SLICE,
    CgroupV2,
    detect,
    job_cgroup_mounts,
)
from vhpc.runtime.namespaces import kinds_made, render_fstab
from vhpc.services import slurm, slurm_cgroup
from vhpc.spec.load import ClusterOptions, HostFacts, build_spec
from vhpc.spec.paths import ClusterPaths
from vhpc.spec.sizes import MIB

GOLDEN = Path(__file__).parent / "golden"
GROUP = "vhpc-lab/compute0"
ALL = "cpuset cpu memory pids"  # what vhpc enables, in the kernel's order


@pytest.fixture
def kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeCgroup2:
    return FakeCgroup2(tmp_path / "cgroup").install(monkeypatch)


def _booted_node(kernel: FakeCgroup2, init_pid: int = 4242) -> tuple[CgroupV2, Path]:
    """create, then the node's first init joins as runtime/linux.py makes it, then settle."""
    driver = CgroupV2(kernel.root)
    driver.create(GROUP, "1", 125 * MIB, 300)
    leaf_procs = driver.procs_files(GROUP)
    for procs in driver.namespace_procs(leaf_procs):  # the init makes its cgroupns here
        kernel.write(procs, str(init_pid))
    driver.settle(leaf_procs)
    return driver, kernel.root / GROUP


def test_create_writes_limits_on_the_node_and_makes_its_leaf_and_slice(
        kernel: FakeCgroup2) -> None:
    driver = detect(kernel.root)
    assert isinstance(driver, CgroupV2)
    made = driver.create(GROUP, "1", 125 * MIB, 300)
    node = kernel.root / GROUP
    assert made == [kernel.root / "vhpc-lab", node]
    assert (kernel.root / "cgroup.subtree_control").read_text() == ALL
    assert (kernel.root / "vhpc-lab" / "cgroup.subtree_control").read_text() == ALL
    assert (node / "memory.max").read_text() == str(125 * MIB)
    assert (node / "memory.swap.max").read_text() == "0"
    assert (node / "cpuset.cpus").read_text() == "1"
    assert (node / "pids.max").read_text() == "300"
    assert sorted(p.name for p in node.iterdir() if p.is_dir()) == [INIT_LEAF, SLURM_SLICE]
    # until the init has made the node's cgroup namespace, the node delegates nothing
    assert (node / "cgroup.subtree_control").read_text() == ""
    assert driver.procs_files(GROUP) == [node / INIT_LEAF / "cgroup.procs"]
    assert driver.namespace_procs(driver.procs_files(GROUP)) == [node / "cgroup.procs"]
    assert driver.dirs(GROUP) == [node]  # limits and counters: the node, jobs included


def test_settle_moves_the_init_to_its_leaf_and_delegates_the_controllers(
        kernel: FakeCgroup2) -> None:
    driver = CgroupV2(kernel.root)
    driver.create(GROUP, "1", 125 * MIB, 300)
    node = kernel.root / GROUP
    kernel.write(node / "cgroup.procs", "4242")
    kernel.write(node / "cgroup.procs", "4243")  # the init's `sleep`, forked meanwhile
    with pytest.raises(OSError) as refused:  # why the leaf: no internal processes
        kernel.write(node / "cgroup.subtree_control", "+memory")
    assert refused.value.errno == errno.EBUSY
    driver.settle(driver.procs_files(GROUP))
    assert kernel.procs(node) == []
    assert kernel.procs(node / INIT_LEAF) == [4242, 4243]
    assert (node / "cgroup.subtree_control").read_text() == ALL
    assert (node / SLURM_SLICE / "cgroup.controllers").read_text() == ALL
    assert (node / SLURM_SLICE / "cgroup.subtree_control").read_text() == ALL
    assert (node / INIT_LEAF / "cgroup.subtree_control").read_text() == ""
    # later processes (spawn, vhpc exec, a revived init) join the leaf; never the node
    kernel.write(driver.procs_files(GROUP)[0], "5000")
    with pytest.raises(OSError):
        kernel.write(node / "cgroup.procs", "5001")
    assert driver.pids(GROUP) == [4242, 4243, 5000]


def test_v1_hooks_leave_the_node_cgroup_alone(tmp_path: Path) -> None:
    from vhpc.runtime.cgroups import CgroupV1

    procs = [tmp_path / "memory" / GROUP / "cgroup.procs"]
    assert CgroupV1(tmp_path).namespace_procs(procs) == procs
    CgroupV1(tmp_path).settle(procs)  # nothing to move, nothing written


def _slurm_2205(kernel: FakeCgroup2, node: Path, slurmd: int, stepd: int, task: int) -> Path:
    """The cgroup operations of Slurm 22.05's cgroup/v2 with IgnoreSystemd=yes and
    CgroupAutomount=yes, in the node's namespace (its /sys/fs/cgroup is `node`);
    return the job's cgroup."""
    slurm_ctls = ("cpuset", "memory", "cpu")  # ctl_names it knows (freezer is not v2's)

    def enable(cg: Path) -> None:  # _enable_subtree_control: one "+ctl" a write
        for ctl in slurm_ctls:
            kernel.write(cg / "cgroup.subtree_control", f"+{ctl}")

    def controllers(cg: Path) -> set[str]:  # _get_controllers
        return set((cg / "cgroup.controllers").read_text().split())

    # slurmd init(): its cgroup from /proc/self/cgroup is `0::/init`
    own = node / INIT_LEAF
    enable(node)  # _enable_system_controllers: the mount point ...
    enable(node / SLURM_SLICE)  # ... and system.slice (its own leaf is skipped)
    assert set(slurm_ctls) <= controllers(own)  # else "Controller X is not enabled!"
    scope = node / SLURM_SLICE / "slurmstepd.scope"
    assert kernel.mkdir(scope)  # _init_slurmd_system_scope: mkdir, not mkdir -p
    assert kernel.mkdir(scope / "slurmd")  # _migrate_to_stepd_scope (no INVOCATION_ID)
    assert set(slurm_ctls) <= controllers(scope)
    enable(scope)
    kernel.write(scope / "slurmd" / "cgroup.procs", str(slurmd))
    # slurmstepd init(): _init_stepd_system_scope parks it in scope/system
    assert kernel.mkdir(scope / "system")
    kernel.write(scope / "system" / "cgroup.procs", str(stepd))
    enable(scope)
    # cgroup_p_step_create: job, step, user (+task), slurm (the stepd)
    job = scope / "job_7"
    step = job / "step_0"
    for cg, delegates in ((job, True), (step, True), (step / "user", True),
                          (step / "slurm", False), (step / "user" / "task_0", False)):
        assert kernel.mkdir(cg)
        if delegates:
            enable(cg)
    kernel.write(step / "slurm" / "cgroup.procs", str(stepd))
    kernel.write(step / "user" / "task_0" / "cgroup.procs", str(task))
    # task/cgroup's limits of the job (--mem=30M, one CPU)
    kernel.write(job / "memory.max", str(30 * MIB))
    kernel.write(job / "cpuset.cpus", "1")
    return job


def test_slurm_2205_cgroup_v2_sequence_fits_the_delegated_slice(
        kernel: FakeCgroup2) -> None:
    driver, node = _booted_node(kernel)
    kernel.write(driver.procs_files(GROUP)[0], "100")  # slurmd, spawned by vhpc
    job = _slurm_2205(kernel, node, slurmd=100, stepd=200, task=300)
    scope = node / SLURM_SLICE / "slurmstepd.scope"
    assert kernel.procs(node / INIT_LEAF) == [4242]
    assert kernel.procs(scope / "slurmd") == [100]
    assert kernel.procs(job / "step_0" / "user" / "task_0") == [300]
    assert (job / "memory.max").read_text() == str(30 * MIB)
    assert (node / "memory.max").read_text() == str(125 * MIB)  # the node's bound above
    # the node's counters, kill and removal cover Slurm's cgroups
    assert driver.pids(GROUP) == [100, 200, 300, 4242]
    for cg in (node / INIT_LEAF, scope / "slurmd", job / "step_0" / "slurm",
               job / "step_0" / "user" / "task_0"):
        (cg / "cgroup.procs").write_text("")  # what cgroup.kill does
    driver.remove(node)
    assert not node.exists()
    assert (kernel.root / "vhpc-lab").is_dir()  # the cluster's: removed after its nodes


def test_a_slurmd_restart_finds_the_scope_and_moves_again(kernel: FakeCgroup2) -> None:
    driver, node = _booted_node(kernel)
    kernel.write(driver.procs_files(GROUP)[0], "100")
    _slurm_2205(kernel, node, slurmd=100, stepd=200, task=300)
    scope = node / SLURM_SLICE / "slurmstepd.scope"
    (scope / "slurmd" / "cgroup.procs").write_text("")  # slurmd died; the supervisor
    kernel.write(driver.procs_files(GROUP)[0], "101")  # starts it in the leaf again
    assert not kernel.mkdir(scope)  # exists: _init_slurmd_system_scope returns early
    kernel.write(scope / "slurmd" / "cgroup.procs", "101")  # _migrate_to_stepd_scope
    assert kernel.procs(scope / "slurmd") == [101]


def test_node_mounts_a_cgroup2_of_its_own_over_a_private_tmpfs(tmp_path: Path) -> None:
    mounts = job_cgroup_mounts(tmp_path, version=2)
    assert render_fstab(mounts).splitlines() == [
        # cgroup2 straight over the host's cgroup2 is refused (EBUSY, measured here on
        # /sys/fs/cgroup/unified): a tmpfs first; another source, or mount -a skips it
        f"{CGROUP_SOURCE} {tmp_path} tmpfs mode=755,size=64k,nosuid,nodev,noexec 0 0",
        f"{CGROUP2_SOURCE} {tmp_path} cgroup2 nosuid,nodev,noexec 0 0",
    ]
    assert "cgroup" in kinds_made(mounts)  # the mount shows the node's namespace root


def test_job_limits_on_both_cgroup_versions() -> None:
    assert slurm_cgroup.job_limits_on(1)
    assert slurm_cgroup.job_limits_on(2)
    assert not slurm_cgroup.job_limits_on(3)


def test_cgroup_conf_v2_matches_golden() -> None:
    text = slurm_cgroup.render_cgroup_conf(2)
    assert text == (GOLDEN / "cgroup-v2.conf").read_text()
    assert "IgnoreSystemd=yes" in text.splitlines()  # no systemd/dbus in a node
    assert slurm_cgroup.render_cgroup_conf(1) == (GOLDEN / "cgroup.conf").read_text()


def test_slurm_conf_on_v2_uses_the_cgroup_plugins() -> None:
    host = HostFacts(online_cpus=(0, 1), mem_total=24 * 1024 * MIB)
    spec = build_spec(ClusterOptions(name="lab", nodes=2, memory="125M"), host)
    lines = slurm.render_slurm_conf(spec, ClusterPaths(Path("/var/lib/vhpc/lab")),
                                    job_limits=slurm_cgroup.job_limits_on(2)).splitlines()
    assert "ProctrackType=proctrack/cgroup" in lines
    assert "TaskPlugin=task/cgroup" in lines
    assert "SelectTypeParameters=CR_Core_Memory" in lines
