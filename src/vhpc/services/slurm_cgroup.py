"""Per-job cgroups for Slurm: the slurm.conf plugin lines and cgroup.conf (pure).

With job limits on, every node has a cgroup namespace rooted at its own cgroup and its
own cgroup mounts (runtime/cgroups.py job_cgroup_mounts), so slurmd's `task/cgroup` and
`proctrack/cgroup` make job cgroups below the node's: on v1 `slurm_<node>/uid_U/job_J/
step_S` in the hierarchies of JOB_CONTROLLERS_V1, on v2 `system.slice/slurmstepd.scope/
job_J/step_S` in the node's delegated slice (cgroup/v2 with IgnoreSystemd: no systemd in
a node). `--mem`, `--mem-per-cpu` and `--cpus-per-task` are enforced per job, an
over-eager job is OOM-killed in its own cgroup while the node and its other jobs live on.
Without them Slurm tracks jobs by /proc. Which applies is a function of the host's
cgroup version only (`job_limits_on`, `cgroup_plugin_lines`).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from vhpc.services import slurm_versions
from vhpc.spec.model import ClusterSpec
from vhpc.spec.paths import ClusterPaths
from vhpc.spec.sizes import MIB

#: Host cgroup versions on which vhpc gives Slurm a cgroup tree in every node: v1 (the
#: node's own hierarchies) and v2 (the node's INIT_LEAF and delegated SLURM_SLICE,
#: runtime/cgroups.py). v2 is checked against a cgroup2-shaped directory only: the
#: development host is v1 (docs/accounting.md "Per-job limits").
JOB_LIMITS_CGROUP_VERSIONS = (1, 2)


def job_limits_on(cgroup_version: int) -> bool:
    """Whether jobs get their own cgroups on a host with this cgroup version."""
    return cgroup_version in JOB_LIMITS_CGROUP_VERSIONS


def cgroup_plugin_lines(cgroup_version: int) -> list[str]:
    """cgroup.conf's plugin and mount lines for the host's cgroup version (Slurm 22.05).

    v2 (src/plugins/cgroup/v2/cgroup_v2.c at slurm-22-05-8-1): slurmd reads its cgroup
    from /proc/self/cgroup (`0::/init` in the node's namespace); with IgnoreSystemd it
    mkdirs `system.slice/slurmstepd.scope` (not the slice: vhpc makes it), moves itself
    to `slurmstepd.scope/slurmd` (no INVOCATION_ID: not started by systemd), and
    slurmstepds park in `slurmstepd.scope/system` before their job cgroups. No dbus.
    CgroupAutomount has slurmd enable the controllers from the mount down to its own
    cgroup and in the slice as well (vhpc has done so already: `CgroupV2.settle`).
    """
    if cgroup_version == 2:
        return ["CgroupPlugin=cgroup/v2", "CgroupMountpoint=/sys/fs/cgroup",
                "CgroupAutomount=yes", "IgnoreSystemd=yes"]
    return ["CgroupPlugin=cgroup/v1", "CgroupMountpoint=/sys/fs/cgroup",
            "CgroupAutomount=no"]


def tracking_lines(spec: ClusterSpec, job_limits: bool) -> list[str]:
    """slurm.conf's ProctrackType and TaskPlugin lines (and, with job limits, the
    default memory of a job that asks for none)."""
    if not job_limits:
        return [
            # The node cgroup is vhpc's, not Slurm's: track by /proc, no task cgroups.
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
        ]
    lines = [
        # Job cgroups below the node's own (its cgroup namespace): limits per job.
        "ProctrackType=proctrack/cgroup",
        "TaskPlugin=task/cgroup",
    ]
    default = default_mem_per_cpu(spec)
    return [*lines, f"DefMemPerCPU={default}"] if default else lines


def select_type_parameters(job_limits: bool) -> str:
    """Memory is a consumable resource when jobs have limits: Slurm gives task/cgroup the
    job's allocated memory (with CR_Core it allocates none, and the cgroup is unlimited)."""
    return "CR_Core_Memory" if job_limits else "CR_Core"


def default_mem_per_cpu(spec: ClusterSpec) -> int:
    """MB a CPU of a job that asks for no memory gets: the leanest compute node's share, so
    such jobs pack one a CPU as they did before memory was consumable (0: no computes).

    Without it a job would claim a whole node's memory (Slurm's default)."""
    shares = [n.memory // MIB // n.cpus for n in spec.computes if n.cpus]
    return max(1, min(shares)) if shares else 0


def render_cgroup_conf(cgroup_version: int = 1, slurm_version: str = "") -> str:
    """cgroup.conf, next to slurm.conf: the node's own cgroup tree already mounted in
    every node (v1 hierarchies, or v2's unified tree), for the cluster's Slurm version."""
    where = "/sys/fs/cgroup/<hierarchy>" if cgroup_version == 1 else "/sys/fs/cgroup"
    return "\n".join(slurm_versions.adapt("cgroup.conf", [
        f"# cgroup.conf written by vhpc: {where} in a node is its own",
        "# subtree (a cgroup namespace); Slurm's job cgroups go below it",
        *cgroup_plugin_lines(cgroup_version),
        "ConstrainCores=yes",
        "ConstrainRAMSpace=yes",
        "AllowedRAMSpace=100",
        "ConstrainSwapSpace=no",
        "ConstrainDevices=no",
    ], slurm_version)) + "\n"


def topology_file(paths: ClusterPaths, node: str) -> Path:
    """The hwloc topology a node's slurmd reads (HWLOC_XMLFILE): its CPUs first."""
    return paths.slurm_spool / node / "vhpc-topology.xml"


def hwloc_plugins_dir(paths: ClusterPaths) -> Path:
    """An empty directory: hwloc's plugin path for the cluster's slurmds (slurmd_env)."""
    return paths.slurm_spool / "hwloc-plugins"


def slurmd_env(paths: ClusterPaths, node: str) -> dict[str, str]:
    """slurmd's environment for its node's topology (slurmstepd inherits it).

    The topology is the node's XML file, so hwloc's discovery plugins are never used; yet
    each topology load (several per slurmd start, one per job step) dlopens all of them
    (PCI, OpenCL, OpenGL with X11, libxml2 with ICU): 10.7 -> 2.8 ms of CPU per
    `slurmd -C` without them. An empty plugin path loads none; hwloc then reads the XML
    with its built-in parser."""
    return {"HWLOC_XMLFILE": str(topology_file(paths, node)),
            "HWLOC_PLUGINS_PATH": str(hwloc_plugins_dir(paths))}


def render_topology(cpus: tuple[int, ...], memory: int) -> str:
    """An hwloc XML machine whose first PUs are the node's CPUs, in order.

    Slurm 22.05 (slurmd's xcpuinfo) maps a node's abstract CPU i to the OS index of the
    i-th PU in hwloc's order, and keeps the identity for PUs whose OS index is not below
    the PU count: a node pinned to host CPU 1 would bind its jobs to CPU 0, which its
    cpuset refuses. Here PU i has cpuset bit i (hwloc orders by cpuset) and the OS index
    of the node's i-th CPU; the host's other CPUs below the highest follow, so every OS
    index is below the PU count. Only task/cgroup's core binding reads it.
    """
    order = [*cpus, *(c for c in range(max(cpus, default=0) + 1) if c not in cpus)]
    every = _mask(range(len(order)))
    one = _mask([0])
    sets = f'nodeset="{one}" complete_nodeset="{one}"'
    cores = "".join(
        f'      <object type="Core" os_index="{os_index}" cpuset="{_mask([i])}" '
        f'complete_cpuset="{_mask([i])}" {sets}>\n'
        f'        <object type="PU" os_index="{os_index}" cpuset="{_mask([i])}" '
        f'complete_cpuset="{_mask([i])}" {sets}/>\n'
        "      </object>\n"
        for i, os_index in enumerate(order))
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<!DOCTYPE topology SYSTEM "hwloc2.dtd">\n'
        '<topology version="2.0">\n'
        f'  <object type="Machine" os_index="0" cpuset="{every}" complete_cpuset="{every}" '
        f'allowed_cpuset="{every}" {sets} allowed_nodeset="{one}">\n'
        f'    <object type="Package" os_index="0" cpuset="{every}" '
        f'complete_cpuset="{every}" {sets}>\n'
        f'      <object type="NUMANode" os_index="0" cpuset="{every}" '
        f'complete_cpuset="{every}" {sets} local_memory="{memory}"/>\n'
        f"{cores}"
        "    </object>\n"
        "  </object>\n"
        "</topology>\n"
    )


def _mask(bits: Iterable[int]) -> str:
    """An hwloc bitmap: 32-bit words in hex, most significant first, comma-separated."""
    value = sum(1 << b for b in set(bits))
    words = [(value >> shift) & 0xFFFFFFFF for shift in range(0, max(value.bit_length(), 1), 32)]
    return ",".join(f"0x{w:08x}" for w in reversed(words))
