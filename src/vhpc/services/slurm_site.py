"""A site's partitions and racks in Slurm's files (pure): slurm.conf lines, topology.conf.

Compute nodes are dynamic (`slurmd -Z`), so slurm.conf cannot list them by name. A
partition holds node groups through NodeSets keyed by feature (every node carries its
group's name as a feature, spec/groups.py): `NodeSet=gpu Feature=gpu` then
`PartitionName=gpu Nodes=gpu`; a node joins its partitions when it registers (measured
on Slurm 22.05). With `EnforcePartLimits=ALL` (services/slurm.py) Slurm refuses at
submission a job that asks more than its partition has (`sbatch -p gpu -N3` on 2 GPU
nodes), per partition, instead of leaving it pending forever.

Racks become `topology/tree` switches (one per rack under a `root` switch). Slurm 22.05
resolves topology.conf names only for nodes it knows when it reads the file: dynamic
nodes that register later are left out of the tree, and jobs would not be placed on them.
`TopologyParam=TopoOptional` keeps the tree for jobs that ask for it (`--switches`) and
schedules every other job as if there were none; `scontrol show topology` shows the tree.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from vhpc.spec.model import ClusterSpec, NodeSpec, PartitionSpec
from vhpc.spec.paths import ClusterPaths

TOPOLOGY_ROOT = "root"


def partition_lines(spec: ClusterSpec) -> list[str]:
    """NodeSet and PartitionName lines (one `Nodes=ALL` partition for a flag-made cluster)."""
    if not spec.partitions:
        return [f"PartitionName={spec.partition} Nodes=ALL Default=YES MaxTime=INFINITE "
                "State=UP"]
    groups = sorted({g for p in spec.partitions for g in p.groups})
    lines = [f"NodeSet={g} Feature={g}" for g in groups]
    return lines + [partition_line(p) for p in spec.partitions]


def partition_line(part: PartitionSpec) -> str:
    """One PartitionName line: its groups' NodeSets (or ALL), default, limits."""
    nodes = ",".join(part.groups) if part.groups else "ALL"
    words = [f"PartitionName={part.name}", f"Nodes={nodes}",
             f"Default={'YES' if part.default else 'NO'}",
             f"MaxTime={part.max_time or 'INFINITE'}"]
    if part.priority_tier:
        words.append(f"PriorityTier={part.priority_tier}")
    return " ".join([*words, "State=UP"])


def topology_file(paths: ClusterPaths) -> Path:
    """topology.conf, beside slurm.conf (where slurmctld looks for it)."""
    return paths.slurm_etc / "topology.conf"


def has_racks(spec: ClusterSpec) -> bool:
    """Whether the cluster's nodes are in racks (a site file's groups are)."""
    return any(n.rack for n in spec.computes)


def topology_lines(spec: ClusterSpec) -> list[str]:
    """slurm.conf lines for the rack tree (none for a cluster without racks)."""
    if not has_racks(spec):
        return []
    return ["TopologyPlugin=topology/tree", "TopologyParam=TopoOptional"]


def render_topology_conf(spec: ClusterSpec) -> str:
    """topology.conf: a switch per rack with its nodes, all under one root switch."""
    racks: dict[str, list[NodeSpec]] = defaultdict(list)
    for node in spec.computes:
        if node.rack:
            racks[node.rack].append(node)
    lines = ["# topology.conf written by vhpc: one switch per rack, under one root switch"]
    for rack in sorted(racks, key=_natural):
        names = ",".join(n.name for n in racks[rack])
        lines.append(f"SwitchName={rack} Nodes={names}")
    if racks:
        lines.append(f"SwitchName={TOPOLOGY_ROOT} Switches="
                     f"{','.join(sorted(racks, key=_natural))}")
    return "\n".join(lines) + "\n"


def _natural(name: str) -> tuple[str, int]:
    """Sort r2 before r10."""
    stem = name.rstrip("0123456789")
    digits = name[len(stem):]
    return stem, int(digits) if digits else -1
