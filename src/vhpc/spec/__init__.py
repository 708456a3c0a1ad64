"""Pure data describing a cluster: no I/O here. `load` builds and validates specs."""

from vhpc.spec.model import ClusterSpec, NodeRole, NodeSpec

__all__ = ["ClusterSpec", "NodeRole", "NodeSpec"]
