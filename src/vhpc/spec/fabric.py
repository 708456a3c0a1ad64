"""The cluster's network fabric (pure): which bridge each node's link hangs on.

A Linux bridge takes at most 1024 ports, so one bridge holds at most ~1000 nodes. The
cluster's own bridge is the *spine*: the host's address, the service nodes, and (in a
small cluster) every compute node. A cluster that may grow past one bridge, or whose
nodes sit in racks (a cluster file), puts its compute nodes on *leaf* bridges instead,
each joined to the spine by one veth pair (its uplink), as Slurm's `topology/tree`
describes it: a leaf per rack, or per block of `LEAF_NODES` slots when there are no racks.

A node's leaf is a number stored in its NodeSpec (`leaf`, -1 = the spine), decided when
the node is planned and never changed, so `node add` finds the same leaves the boot made.
All of one subnet stays one layer-2 segment: a leaf forwards to the spine, the spine to
the other leaves, so addresses and routes are the same as on a single bridge.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import replace

from vhpc.errors import SpecError
from vhpc.spec.addressing import FIRST_COMPUTE_SLOT
from vhpc.spec.model import ClusterSpec, NodeRole, NodeSpec

#: The kernel's limit of ports on one bridge (BR_MAX_PORTS).
BRIDGE_PORTS = 1024
#: Compute nodes on one leaf bridge (its uplink takes one more port; a few spare).
LEAF_NODES = 1000
#: Most nodes a cluster keeps on the spine alone: beyond it, compute nodes go on leaves.
FLAT_NODES = 1000
SPINE = -1


def leaf_bridge(spec: ClusterSpec, leaf: int) -> str:
    """Name of a leaf bridge (at most 15 characters)."""
    return f"vh{spec.cluster_id}l{leaf}"


def uplink(spec: ClusterSpec, leaf: int) -> tuple[str, str]:
    """The leaf's uplink veth pair: (end on the spine, end on the leaf)."""
    return f"vh{spec.cluster_id}u{leaf}", f"vh{spec.cluster_id}d{leaf}"


def bridge_of(spec: ClusterSpec, node: NodeSpec) -> str:
    """The bridge a node's host-side veth is attached to."""
    return spec.bridge if node.leaf == SPINE else leaf_bridge(spec, node.leaf)


def uses_leaves(spec: ClusterSpec, nodes: Sequence[NodeSpec]) -> bool:
    """Whether rack-less compute nodes of this cluster go on leaves (it may outgrow one
    bridge) rather than on the spine."""
    services = sum(1 for n in nodes if n.role is not NodeRole.COMPUTE)
    return spec.max_nodes + services > FLAT_NODES


def place(spec: ClusterSpec, existing: Sequence[NodeSpec],
          new: Sequence[NodeSpec]) -> tuple[NodeSpec, ...]:
    """`new` nodes with their leaf decided, given the nodes already placed.

    A node in a rack goes on its rack's leaf (a new leaf for a new rack); a rack-less one
    on the spine in a cluster that fits one bridge, else on the leaf of its slot's block.
    """
    leaves: dict[tuple[str, int], int] = {}
    for node in existing:
        if node.role is NodeRole.COMPUTE and node.leaf != SPINE:
            leaves.setdefault(_leaf_key(node), node.leaf)
    blocks = uses_leaves(spec, [*existing, *new])
    next_leaf = max(leaves.values(), default=-1) + 1
    out = []
    for node in new:
        if node.role is not NodeRole.COMPUTE or not (node.rack or blocks):
            out.append(replace(node, leaf=SPINE))
            continue
        key = _leaf_key(node)
        if key not in leaves:
            leaves[key] = next_leaf
            next_leaf += 1
        out.append(replace(node, leaf=leaves[key]))
    placed = (*existing, *out)
    check_ports(placed)
    return tuple(out)


def _leaf_key(node: NodeSpec) -> tuple[str, int]:
    """What decides a compute node's leaf: its rack, or (rack-less) its block of slots."""
    if node.rack:
        return (node.rack, 0)
    return ("", (node.slot - FIRST_COMPUTE_SLOT) // LEAF_NODES)


def place_all(spec: ClusterSpec) -> ClusterSpec:
    """The spec with every node placed (a new cluster)."""
    return spec.with_nodes(place(spec, (), spec.nodes))


def check_ports(nodes: Sequence[NodeSpec]) -> None:
    """Refuse a layout that puts more links on a bridge than it takes."""
    per_leaf = Counter(n.leaf for n in nodes if n.leaf != SPINE)
    for leaf, count in per_leaf.items():
        if count > LEAF_NODES:
            rack = next(n.rack for n in nodes if n.leaf == leaf)
            raise SpecError(f"rack {rack!r} would hold {count} nodes, but one leaf bridge "
                            f"holds at most {LEAF_NODES}: spread the nodes over more racks")
    spine = sum(1 for n in nodes if n.leaf == SPINE) + len(per_leaf)
    if spine > BRIDGE_PORTS:
        raise SpecError(f"{len(per_leaf)} racks and {spine - len(per_leaf)} nodes outside "
                        f"them need {spine} ports on the cluster bridge, at most "
                        f"{BRIDGE_PORTS}: use fewer, larger racks (e.g. a larger rack_size)")


def leaves_of(nodes: Sequence[NodeSpec]) -> list[int]:
    """The leaves these nodes hang on, in order."""
    return sorted({n.leaf for n in nodes if n.leaf != SPINE})
