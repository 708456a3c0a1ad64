"""cgroup v1 and v2 drivers against temporary directories laid out like the real mounts."""

from __future__ import annotations

from pathlib import Path

from vhpc.runtime.cgroups import CgroupV1, CgroupV2, detect


def make_v2(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (root / "cgroup.subtree_control").write_text("")


def test_v2_create_enables_controllers_and_sets_limits(tmp_path: Path) -> None:
    make_v2(tmp_path)
    driver = detect(tmp_path)
    assert isinstance(driver, CgroupV2)
    # the kernel would create these files in each new directory; emulate it
    cluster = tmp_path / "vhpc-lab"
    cluster.mkdir()
    (cluster / "cgroup.controllers").write_text("cpuset cpu memory pids\n")
    made = driver.create("vhpc-lab/compute0", "1", 125 << 20)
    node = tmp_path / "vhpc-lab" / "compute0"
    assert made == [node]
    assert (tmp_path / "cgroup.subtree_control").read_text() == "+cpuset +memory +cpu +pids"
    assert (cluster / "cgroup.subtree_control").read_text() == "+cpuset +memory +cpu +pids"
    assert (node / "memory.max").read_text() == str(125 << 20)
    assert (node / "cpuset.cpus").read_text() == "1"
    # its processes join its leaf (tests/unit/test_cgroup_v2_jobs.py: the layout)
    assert driver.procs_files("vhpc-lab/compute0") == [node / "init" / "cgroup.procs"]


def test_v2_stats_read_oom_kills_and_cpu(tmp_path: Path) -> None:
    node = tmp_path / "vhpc-lab" / "n0"
    node.mkdir(parents=True)
    (node / "memory.current").write_text("1048576\n")
    (node / "memory.max").write_text("max\n")
    (node / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 2\n")
    (node / "cpu.stat").write_text("usage_usec 1500\nuser_usec 1000\n")
    (node / "cgroup.procs").write_text("10\n11\n")
    stats = CgroupV2(tmp_path).stats("vhpc-lab/n0")
    assert (stats.mem_bytes, stats.mem_limit, stats.oom_kills, stats.cpu_ns,
            stats.nprocs) == (1048576, None, 2, 1_500_000, 2)


def test_v1_create_inherits_cpuset_and_sets_memory(tmp_path: Path) -> None:
    for c in ("memory", "cpuset", "cpuacct", "pids"):
        (tmp_path / c).mkdir()
    (tmp_path / "memory" / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    (tmp_path / "cpuset" / "cpuset.cpus").write_text("0-1\n")
    (tmp_path / "cpuset" / "cpuset.mems").write_text("0\n")
    driver = detect(tmp_path)
    assert isinstance(driver, CgroupV1)
    made = driver.create("vhpc-lab/n0", "1", 64 << 20)
    assert tmp_path / "cpuset" / "vhpc-lab" in made
    assert (tmp_path / "cpuset" / "vhpc-lab" / "cpuset.cpus").read_text() == "0-1"
    assert (tmp_path / "cpuset" / "vhpc-lab" / "n0" / "cpuset.cpus").read_text() == "1"
    assert (tmp_path / "cpuset" / "vhpc-lab" / "n0" / "cpuset.mems").read_text() == "0"
    assert (tmp_path / "memory" / "vhpc-lab" / "n0" / "memory.limit_in_bytes").read_text() \
        == str(64 << 20)
    assert len(driver.procs_files("vhpc-lab/n0")) == 4
