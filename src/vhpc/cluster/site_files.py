"""What a site (cluster file) adds on the host at boot and on node changes: the mount
points of shares, and topology.conf for racks.

A share's host directory is never created, changed or deleted by vhpc: it must exist
(control.plan checks) and `down` only drops the nodes' mounts of it. When the share's
path inside the nodes does not exist on the host (nodes see the host's file tree), its
mount point is made empty and recorded in the ledger as such: teardown removes it only
while it is empty (cluster/teardown.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vhpc.atomic import write_atomic
from vhpc.cluster.ledger import Kind, Ledger
from vhpc.cluster.node import is_private_share
from vhpc.cluster.teardown import MOUNTPOINT
from vhpc.services import slurm_site
from vhpc.spec.model import ClusterSpec, NodeSpec
from vhpc.spec.paths import ClusterPaths


def missing_dirs(path: Path) -> list[Path]:
    """`path` and its parents that do not exist, deepest first."""
    missing = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    return missing


def make_share_points(spec: ClusterSpec, ledger: Ledger) -> None:
    """Make (and record) the missing mount points of the cluster's shares."""
    for share in spec.shares:
        if is_private_share(share):  # made in each node's private /tmp (cluster/node.py)
            continue
        missing = missing_dirs(Path(share.path))
        for made in missing:  # deepest first: teardown removes them in this order
            ledger.add(Kind.DIRECTORY, str(made), "", **{MOUNTPOINT: True})
        if missing:
            missing[0].mkdir(parents=True, mode=0o755)


def node_site_fields(spec: ClusterSpec, node: NodeSpec) -> dict[str, Any]:
    """A node's place in the site for status documents: group, partitions, features, rack."""
    return {"group": node.group, "partitions": list(spec.partitions_of(node)),
            "features": list(node.features), "rack": node.rack}


def write_topology(spec: ClusterSpec, paths: ClusterPaths) -> bool:
    """Write topology.conf if the cluster has racks; whether it has."""
    if not slurm_site.has_racks(spec):
        return False
    write_atomic(slurm_site.topology_file(paths), slurm_site.render_topology_conf(spec))
    return True
