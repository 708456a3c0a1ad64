"""Node groups, partitions and racks of a site (a cluster file): pure planning, no I/O.

A group is a set of alike compute nodes named `<group>0..N-1` (`cpu0`, `cpu1`, `gpu0`),
each with the group's memory, CPUs, GPUs, features and rack. Slurm learns a node's group
from its features: every node carries its group's name as a feature, and slurm.conf has
`NodeSet=<group> Feature=<group>`, so a dynamic node (`slurmd -Z`) joins the partitions
of its group the moment it registers (services/slurm_site.py renders those lines).

Racks: a node without a rack goes to the first default rack (`r1`, `r2`, ...) that has
fewer than `rack_size` nodes, in node order.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace

from vhpc.errors import SpecError
from vhpc.spec import bounds, gpus
from vhpc.spec.model import NodeRole, NodeSpec, PartitionSpec

DEFAULT_RACK_SIZE = 16
MAX_GROUPS = 64
MAX_PARTITIONS = 64
MAX_PRIORITY_TIER = 65533  # Slurm's largest PriorityTier
DEFAULT_RACK_PREFIX = "r"

# No trailing digit: groups `a1` and `a11` would both name a node `a110`.
_GROUP_RE = re.compile(r"^[a-z](?:[a-z0-9-]{0,30}[a-z])?$")
_RACK_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
# Slurm's time formats: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS, or unlimited.
_TIME_RE = re.compile(r"^(?:\d{1,6}(?::\d{1,2}){0,2}|\d{1,4}-\d{1,2}(?::\d{1,2}){0,2})$")
_UNLIMITED = frozenset({"unlimited", "infinite"})


@dataclass(frozen=True)
class NodeGroup:
    """One `[[nodes]]` table: `count` alike nodes; None/"" take the cluster's defaults."""

    name: str
    count: int = 1
    memory: str | int | None = None
    cpus: int | None = None
    gpus: str | int = ""  # 2 or "a100:2"
    features: tuple[str, ...] = ()
    rack: str = ""


def check_group_name(name: str, what: str = "group") -> str:
    """A group name: lowercase letters, digits, '-', starting and ending with a letter."""
    bounds.check_text(name, what, 32)
    if not _GROUP_RE.fullmatch(name):
        raise SpecError(f"invalid {what} {name!r}: use 1-32 lowercase letters, digits or "
                        "'-', starting and ending with a letter (nodes are named "
                        f"<group>0, <group>1...), e.g. {what} = \"cpu\"")
    return name


def check_rack(rack: str) -> str:
    """A rack (switch) name for topology.conf: a plain word."""
    bounds.check_text(rack, "rack", 64)
    if rack and not _RACK_RE.fullmatch(rack):
        raise SpecError(f"invalid rack {rack!r}: use letters, digits, '_', '.' or '-', "
                        "e.g. rack = \"r2\"")
    return rack


def group_features(group: NodeGroup) -> tuple[str, ...]:
    """The node's Slurm features: its group's name first (the NodeSet key), then the rest."""
    return tuple(dict.fromkeys((group.name, *group.features)))


def check_groups(groups: Sequence[NodeGroup]) -> None:
    """Every group on its own, then the groups together (names, counts, features)."""
    if len(groups) > MAX_GROUPS:
        raise SpecError(f"{len(groups)} node groups: at most {MAX_GROUPS}")
    for group in groups:
        check_group_name(group.name)
        bounds.check_int(group.count, f"group {group.name!r}: count", 1,
                         bounds.MAX_COMPUTE_NODES, "nodes in a group")
        if group.cpus is not None:
            bounds.check_int(group.cpus, f"group {group.name!r}: cpus", 1,
                             bounds.MAX_CPUS_PER_NODE, "CPUs per node")
        gpus.parse_gpus(group.gpus, f"group {group.name!r}: gpus")
        bounds.check_features(group.features)
        check_rack(group.rack)
    duplicate = [n for n, c in Counter(g.name for g in groups).items() if c > 1]
    if duplicate:
        raise SpecError(f"node group {duplicate[0]!r} is defined twice: give each "
                        "[[nodes]] group its own name")
    bounds.check_compute_count(sum(g.count for g in groups), "nodes in all groups")
    names = {g.name for g in groups}
    for group in groups:
        clash = names.intersection(group.features) - {group.name}
        if clash:
            raise SpecError(f"group {group.name!r}: feature {sorted(clash)[0]!r} is the name of "
                            "another group (a group's name is its nodes' feature): rename one")


def check_max_time(text: str, what: str) -> str:
    """A Slurm time limit ("30", "04:00:00", "1-00:00:00", "UNLIMITED") or "" for none."""
    bounds.check_text(text, what, 32)
    if text and text.lower() not in _UNLIMITED and not _TIME_RE.fullmatch(text):
        raise SpecError(f"{what} {text!r}: use Slurm's time format, e.g. \"30\" (minutes), "
                        "\"04:00:00\", \"1-00:00:00\" or \"UNLIMITED\"")
    return text


def check_partitions(partitions: Sequence[PartitionSpec],
                     group_names: Sequence[str]) -> tuple[PartitionSpec, ...]:
    """Validated partitions; the first is made the default when none says so."""
    if len(partitions) > MAX_PARTITIONS:
        raise SpecError(f"{len(partitions)} partitions: at most {MAX_PARTITIONS}")
    for part in partitions:
        for key in PARTITION_KEYS:
            check_partition_key(part, key, group_names)
    duplicate = [n for n, c in Counter(p.name for p in partitions).items() if c > 1]
    if duplicate:
        raise SpecError(f"partition {duplicate[0]!r} is defined twice: name each once")
    defaults = [p.name for p in partitions if p.default]
    if len(defaults) > 1:
        raise SpecError(f"partitions {defaults[0]!r} and {defaults[1]!r} both say "
                        "default = true: only one partition can be the default")
    if partitions and not defaults:
        return (replace(partitions[0], default=True), *partitions[1:])
    return tuple(partitions)


PARTITION_KEYS = ("name", "nodes", "max_time", "priority_tier")


def check_partition_key(part: PartitionSpec, key: str, group_names: Sequence[str]) -> None:
    """One key of a partition: its name, its groups (all defined), max_time, priority_tier."""
    what = f"partition {part.name!r}"
    if key == "name":
        bounds.check_partition(part.name)
    elif key == "nodes":
        for group in part.groups:
            if group not in group_names:
                have = ", ".join(sorted(group_names)) or "none: add [[nodes]] groups"
                raise SpecError(f"{what}: nodes names group {group!r}, which no [[nodes]] "
                                f"table defines (groups: {have})")
    elif key == "max_time":
        check_max_time(part.max_time, f"{what}: max_time")
    elif key == "priority_tier":
        bounds.check_int(part.priority_tier, f"{what}: priority_tier", 0, MAX_PRIORITY_TIER)


def deal_cpus(per_node: int, online: tuple[int, ...], offset: int) -> tuple[int, ...]:
    """`per_node` CPUs from the online ones, starting at CPU index `offset` (round-robin)."""
    if per_node > len(online):
        raise SpecError(f"cpus = {per_node} is more than the host's {len(online)} online "
                        f"CPUs: use cpus = {len(online)} or fewer")
    return tuple(sorted({online[(offset + k) % len(online)] for k in range(per_node)}))


def rack_fill(nodes: Sequence[NodeSpec], rack_size: int = DEFAULT_RACK_SIZE,
              ) -> tuple[NodeSpec, ...]:
    """Nodes with a rack each: a compute node without one goes to the first default rack
    (r1, r2...) with room, in node order; service nodes stay out of racks."""
    load = Counter(n.rack for n in nodes if n.rack)
    out = []
    for node in nodes:
        if node.role is NodeRole.COMPUTE and not node.rack:
            number = 1
            while load[f"{DEFAULT_RACK_PREFIX}{number}"] >= rack_size:
                number += 1
            rack = f"{DEFAULT_RACK_PREFIX}{number}"
            load[rack] += 1
            node = replace(node, rack=rack)
        out.append(node)
    return tuple(out)


def next_in_group(taken: Sequence[str], group: str, count: int) -> list[str]:
    """`count` new names `<group>N` numbered after the highest one in `taken`."""
    pattern = re.compile(rf"^{re.escape(group)}(\d+)$")
    numbers = [int(m.group(1)) for name in taken if (m := pattern.match(name))]
    first = max(numbers) + 1 if numbers else 0
    return [f"{group}{first + i}" for i in range(count)]
