"""What the links of a cluster need beyond its bridge: the leaf bridges of its fabric
(spec/fabric.py), made and recorded on demand, and its claim on the host's neighbour
table (runtime/neighbours.py), sized for its node count.

A leaf and its uplink are cluster-wide resources (no node in their ledger entries): made
the first time a node on that leaf is built, kept while the cluster lives (a node removal
leaves them), removed by `down` with the cluster's other links.
"""

from __future__ import annotations

from collections.abc import Sequence

from vhpc.cluster.ledger import Kind, Ledger
from vhpc.runtime import Runtime
from vhpc.runtime.network import LeafSpec
from vhpc.spec import fabric, scale
from vhpc.spec.model import ClusterSpec, NodeSpec


def missing_leaves(spec: ClusterSpec, nodes: Sequence[NodeSpec],
                   recorded: set[str]) -> list[LeafSpec]:
    """The leaves these nodes need that are not recorded yet."""
    out = []
    for leaf in fabric.leaves_of(nodes):
        name = fabric.leaf_bridge(spec, leaf)
        if name not in recorded:
            up, down = fabric.uplink(spec, leaf)
            out.append(LeafSpec(name, spec.bridge, up, down))
    return out


def claim_neighbours(spec: ClusterSpec, ledger: Ledger, runtime: Runtime,
                     adding: Sequence[NodeSpec]) -> None:
    """Claim the cluster's share of the host's neighbour table for its nodes and `adding`
    (recorded first: teardown releases it)."""
    count = len({n.name for n in spec.nodes} | {n.name for n in adding})
    if not ledger.entries(Kind.NEIGH_CLAIM):
        ledger.add(Kind.NEIGH_CLAIM, spec.name)
    runtime.claim_neighbours(spec.name, scale.neighbour_entries(count))


def ensure_leaves(spec: ClusterSpec, ledger: Ledger, runtime: Runtime,
                  nodes: Sequence[NodeSpec]) -> None:
    """Make (recorded first) the leaf bridges and uplinks these nodes hang on."""
    recorded = {e.ident for e in ledger.entries(Kind.BRIDGE)}
    leaves = missing_leaves(spec, nodes, recorded)
    for leaf in leaves:
        ledger.add(Kind.BRIDGE, leaf.name)
        ledger.add(Kind.VETH, leaf.up)
    runtime.create_leaves(leaves)
