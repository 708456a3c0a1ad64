"""Per-job cgroups: Slurm's plugin lines and cgroup.conf, a node's own cgroup mounts and
namespace, and node cgroups that count, kill and remove the job cgroups below them."""

from __future__ import annotations

from pathlib import Path

from vhpc.runtime.cgroups import CgroupV1, job_cgroup_mounts, read_v1
from vhpc.runtime.namespaces import NsPaths, join_cgroup_argv, render_fstab
from vhpc.services import slurm, slurm_cgroup
from vhpc.spec.load import ClusterOptions, HostFacts, build_spec
from vhpc.spec.paths import ClusterPaths
from vhpc.spec.sizes import MIB

GOLDEN = Path(__file__).parent / "golden"
HOST = HostFacts(online_cpus=(0, 1), mem_total=24 * 1024 * MIB)
SPEC = build_spec(ClusterOptions(name="lab", nodes=2, memory="125M"), HOST)
PATHS = ClusterPaths(Path("/var/lib/vhpc/lab"))


def test_cgroup_conf_matches_golden() -> None:
    assert slurm_cgroup.render_cgroup_conf() == (GOLDEN / "cgroup.conf").read_text()


def test_slurm_conf_with_job_limits_uses_cgroup_plugins_and_consumable_memory() -> None:
    lines = slurm.render_slurm_conf(SPEC, PATHS, job_limits=True).splitlines()
    assert "ProctrackType=proctrack/cgroup" in lines
    assert "TaskPlugin=task/cgroup" in lines
    # memory must be consumable: with CR_Core Slurm allocates none and the cgroup is unlimited
    assert "SelectTypeParameters=CR_Core_Memory" in lines
    assert "DefMemPerCPU=125" in lines  # the default 125M one-CPU node's whole memory
    plain = slurm.render_slurm_conf(SPEC, PATHS).splitlines()
    assert "ProctrackType=proctrack/linuxproc" in plain
    assert "TaskPlugin=task/none" in plain
    assert "SelectTypeParameters=CR_Core" in plain
    assert not any(line.startswith("DefMemPerCPU") for line in plain)


def test_default_memory_per_cpu_is_the_leanest_compute_share() -> None:
    spec = build_spec(ClusterOptions(name="lab", nodes=2, cpus=2, memory="300M"), HOST)
    assert slurm_cgroup.default_mem_per_cpu(spec) == 150


def test_node_mounts_its_own_cgroup_tree_over_a_private_tmpfs(tmp_path: Path) -> None:
    for c in ("memory", "cpuset", "freezer", "pids"):
        (tmp_path / c).mkdir()
    fstab = render_fstab(job_cgroup_mounts(tmp_path)).splitlines()
    # the host's hierarchy on the same mount point would be refused (EBUSY): a tmpfs first
    assert fstab[0] == f"vhpc-cgroup {tmp_path} tmpfs mode=755,size=64k,nosuid,nodev,noexec 0 0"
    assert fstab[1:] == [
        f"vhpc-cgroup {tmp_path}/{c} cgroup {c},nosuid,nodev,noexec,X-mount.mkdir 0 0"
        for c in ("memory", "cpuset", "freezer")]  # cpuacct absent here; pids is vhpc's
    assert job_cgroup_mounts(tmp_path / "none") == []


def test_cgroup_namespace_is_made_and_entered_from_inside_the_node_cgroup(
        tmp_path: Path) -> None:
    ns = NsPaths.under(tmp_path, "compute0")
    assert ns.all() == [tmp_path / f"compute0.{k}"
                        for k in ("net", "uts", "ipc", "mnt", "cgroup", "pid")]
    assert not any(a.startswith("--cgroup") for a in ns.nsenter_args())  # an older node
    ns.cgroup.touch()
    assert f"--cgroup={ns.cgroup}" in ns.nsenter_args(pid=False)
    # its root is the cgroup of the process that makes (or enters) it: join first
    assert join_cgroup_argv([Path("/cg/memory/x/cgroup.procs")]) == [
        "/bin/sh", "-c", 'echo $$ > /cg/memory/x/cgroup.procs; exec "$@"', "vhpc-node"]


def _job_tree(root: Path) -> Path:
    """A v1 memory hierarchy with a node cgroup and Slurm's job cgroups below it."""
    node = root / "memory" / "vhpc-lab" / "n0"
    step = node / "slurm_n0" / "uid_1000" / "job_7" / "step_0"
    step.mkdir(parents=True)
    (node / "cgroup.procs").write_text("10\n")
    (step / "cgroup.procs").write_text("20\n21\n")
    return node


def test_v1_pids_include_the_job_cgroups(tmp_path: Path) -> None:
    _job_tree(tmp_path)
    assert CgroupV1(tmp_path).pids("vhpc-lab/n0") == [10, 20, 21]


def test_v1_remove_goes_depth_first_through_job_cgroups(tmp_path: Path) -> None:
    node = _job_tree(tmp_path)
    for f in node.rglob("cgroup.procs"):  # cgroupfs dirs hold no real files
        f.unlink()
    CgroupV1(tmp_path).remove(node)
    assert not node.exists()
    assert (tmp_path / "memory" / "vhpc-lab").exists()  # the parent is the caller's


def test_v1_procs_files_skip_a_hierarchy_the_node_was_not_made_in(tmp_path: Path) -> None:
    for c in ("memory", "freezer"):
        (tmp_path / c).mkdir()
    (tmp_path / "memory" / "vhpc-lab" / "n0").mkdir(parents=True)
    assert CgroupV1(tmp_path).procs_files("vhpc-lab/n0") == [
        tmp_path / "memory" / "vhpc-lab" / "n0" / "cgroup.procs"]


def test_v1_process_count_is_hierarchical(tmp_path: Path) -> None:
    node = _job_tree(tmp_path)
    pids = tmp_path / "pids" / "vhpc-lab" / "n0"
    pids.mkdir(parents=True)
    (pids / "pids.current").write_text("3\n")
    assert read_v1({"memory": node, "pids": pids}).nprocs == 3
    assert read_v1({"memory": node}).nprocs == 1  # no pids hierarchy: the node's own


def _pus(xml: str) -> list[tuple[str, str]]:
    """(os_index, cpuset) of every PU, in document order."""
    import re

    return re.findall(r'type="PU" os_index="(\d+)" cpuset="([^"]+)"', xml)


def test_topology_puts_the_nodes_cpus_first_with_every_os_index_below_the_count() -> None:
    # hwloc orders PUs by cpuset; Slurm maps abstract CPU i to the i-th PU's OS index
    assert _pus(slurm_cgroup.render_topology((3, 5), 1 << 30)) == [
        ("3", "0x00000001"), ("5", "0x00000002"), ("0", "0x00000004"), ("1", "0x00000008"),
        ("2", "0x00000010"), ("4", "0x00000020")]
    assert _pus(slurm_cgroup.render_topology((0,), 1 << 30)) == [("0", "0x00000001")]
    many = slurm_cgroup.render_topology((40,), 1 << 30)
    assert 'cpuset="0x000001ff,0xffffffff"' in many  # 41 PUs: two 32-bit words
    assert _pus(many)[0] == ("40", "0x00000001")


def test_slurmd_reads_its_nodes_topology() -> None:
    daemon = slurm.slurmd(SPEC, PATHS, SPEC.computes[0])
    assert daemon.env["HWLOC_XMLFILE"] == str(
        PATHS.slurm_spool / SPEC.computes[0].name / "vhpc-topology.xml")


def test_gemm_finds_the_tightest_limit_above_its_job_cgroup(tmp_path: Path) -> None:
    from vhpc.workloads.bin.gemm_mpi import memory_limit

    node = tmp_path / "memory"  # the node's own mount: its cgroup is the root
    task = node / "slurm_c0" / "uid_1" / "job_3" / "step_0" / "task_0"
    task.mkdir(parents=True)
    (node / "memory.limit_in_bytes").write_text(f"{125 << 20}\n")
    (node / "slurm_c0" / "uid_1" / "job_3" / "memory.limit_in_bytes").write_text(
        f"{100 << 20}\n")
    (task / "memory.limit_in_bytes").write_text("9223372036854771712\n")  # unlimited
    proc = tmp_path / "cgroup"
    proc.write_text("4:memory:/slurm_c0/uid_1/job_3/step_0/task_0\n")
    assert memory_limit(str(tmp_path), str(proc)) == 100 << 20


KILL = ("6,2001,3460074298,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),"
        "cpuset=step_0,mems_allowed=0,oom_memcg=/vhpc-lab/n0,task_memcg=/vhpc-lab/n0/"
        "slurm_n0/uid_1/job_3/step_0/task_0,task=gemm_block_mpi,pid=12065,uid=1\n")


def test_oom_victim_cgroup_is_read_from_the_kernel_record() -> None:
    from vhpc.runtime.oom_log import oom_victim_cgroup

    assert oom_victim_cgroup(KILL) == "/vhpc-lab/n0/slurm_n0/uid_1/job_3/step_0/task_0"
    assert oom_victim_cgroup("6,2002,1,-;Memory cgroup stats for /vhpc-lab/n0:") is None


def test_job_oom_kills_count_in_their_node_from_when_the_log_is_opened(
        tmp_path: Path) -> None:
    from vhpc.runtime.oom_log import KernelOomLog

    kmsg = tmp_path / "kmsg"
    kmsg.write_text(KILL)  # before the reader started: another cluster's, say
    ooms = KernelOomLog(kmsg)
    ooms.start()
    with kmsg.open("a") as f:
        f.write(KILL + KILL.replace("/n0", "/n1") + "6,2003,1,-;unrelated\n")
    assert ooms.below("vhpc-lab/n0") == 1
    assert ooms.below("vhpc-lab/n1") == 1
    assert ooms.below("vhpc-lab/n") == 0  # a prefix of a name is not its cgroup
    assert ooms.below("vhpc-lab/n0/slurm_n0/uid_1/job_3/step_0/task_0") == 0  # its own
    assert KernelOomLog(tmp_path / "none").below("vhpc-lab/n0") == 0
    # read_v1: the node's own kills (memory.oom_control) plus those below it
    mem = tmp_path / "memory" / "vhpc-lab" / "n0"
    mem.mkdir(parents=True)
    (mem / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    stats = read_v1({"memory": mem}, ooms, memory_root=tmp_path / "memory")
    assert stats.oom_kills == 3
    assert read_v1({"memory": mem}, ooms, memory_root=tmp_path / "elsewhere").oom_kills == 2


def test_a_node_gets_a_cgroup_namespace_only_with_cgroup_mounts_of_its_own(
        tmp_path: Path) -> None:
    from vhpc.runtime.namespaces import Mount, kinds_made

    plain = [Mount("/proc", "vhpc-proc", "proc")]
    assert kinds_made(plain) == ["net", "uts", "ipc", "mnt", "pid"]
    (tmp_path / "memory").mkdir()
    assert kinds_made(plain + job_cgroup_mounts(tmp_path)) == [
        "net", "uts", "ipc", "mnt", "cgroup", "pid"]
