"""Plan compute nodes added to (or removed from) a running cluster: pure, validated.

Every limit is checked before anything is made, each with a one-line error that says
which limit it is and how to raise it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from vhpc.errors import SpecError, UserError
from vhpc.spec import addressing, bounds, fabric, gpus, placement, site
from vhpc.spec.load import (
    COMPUTE_PREFIX,
    DEFAULT_NODE_MEMORY,
    HostFacts,
    check_host_memory,
    check_memory,
    check_node_name,
)
from vhpc.spec.model import ClusterSpec, NodeRole, NodeSpec
from vhpc.spec.sizes import parse_size

_INDEXED = re.compile(rf"^{COMPUTE_PREFIX}(\d+)$")


class NodeExistsError(UserError):
    """A node of that name is already in the cluster."""


class NoSuchNodeError(UserError):
    """The cluster has no node of that name."""


@dataclass(frozen=True)
class AddRequest:
    """What `vhpc node add` asked for: names, or a count of auto-named nodes."""

    names: tuple[str, ...] = ()
    count: int = 0
    memory: str | int | None = None
    cpus: int | None = None
    cpuset: str | None = None
    features: tuple[str, ...] = ()
    gpus: str | int = ""  # fake GPUs of each new node: 2 or "a100:2" (`node add --gpus`)
    group: str = ""  # `node add --group G`: nodes G<next> with G's properties (spec/site.py)


def next_names(spec: ClusterSpec, count: int) -> list[str]:
    """`count` names computeN numbered after the highest computeN in the cluster."""
    taken = [int(m.group(1)) for n in spec.nodes if (m := _INDEXED.match(n.name))]
    first = max(taken) + 1 if taken else 0
    return [f"{COMPUTE_PREFIX}{first + i}" for i in range(count)]


def check_add_count(count: object) -> int:
    """`node add --count N`: a whole number from 1 to the most compute nodes a cluster has."""
    return bounds.check_int(count, "--count", 1, bounds.MAX_COMPUTE_NODES,
                            f"a cluster holds at most {bounds.MAX_COMPUTE_NODES} compute nodes")


def requested_count(request: AddRequest) -> int:
    """How many nodes a request adds, checked against the bounds before any name is made."""
    if len(request.names) > bounds.MAX_COMPUTE_NODES:
        raise SpecError(f"{len(request.names)} node names: a cluster holds at most "
                        f"{bounds.MAX_COMPUTE_NODES} compute nodes")
    if request.names and request.count:
        raise SpecError("give node names or --count, not both")
    if request.names:
        return len(request.names)
    return 1 if request.count == 0 else check_add_count(request.count)


def _names(spec: ClusterSpec, request: AddRequest, count: int) -> list[str]:
    for name in request.names:
        bounds.check_text(name, "node name", 63)
    names = list(request.names) or next_names(spec, count)
    bounds.check_distinct(names)
    existing = {n.name for n in spec.nodes}
    for name in names:
        check_node_name(name)
        if name in existing:
            raise NodeExistsError(f"node {name!r} already exists in cluster {spec.name!r}: "
                                  "pick another name, or 'vhpc node rm' it first")
    return names


def default_node_memory(spec: ClusterSpec) -> int:
    """The cluster's node memory (`up --memory`), kept in the spec; old specs: the first node."""
    if spec.node_memory:
        return spec.node_memory
    return spec.computes[0].memory if spec.computes else parse_size(DEFAULT_NODE_MEMORY)


def _memory(spec: ClusterSpec, request: AddRequest) -> int:
    memory = default_node_memory(spec) if request.memory is None else parse_size(request.memory)
    check_memory(memory, "--memory")
    return memory


def _cpusets(spec: ClusterSpec, request: AddRequest, facts: HostFacts,
             count: int) -> list[tuple[int, ...]]:
    if request.cpus is not None and request.cpuset is not None:
        raise SpecError("give --cpus or --cpuset, not both")
    if request.cpuset is not None:
        cpus = placement.parse_cpulist(request.cpuset)
        placement.check_cpus_exist(cpus, facts.online_cpus, f"--cpuset {request.cpuset}")
        return [cpus] * count
    per_node = bounds.check_cpus(request.cpus)
    return placement.round_robin(count, per_node, facts.online_cpus, len(spec.computes))


def check_max_nodes(spec: ClusterSpec, adding: int) -> None:
    """Refuse to go past Slurm's MaxNodeCount (fixed when slurmctld started)."""
    total = len(spec.computes) + adding
    if total > spec.max_nodes:
        raise SpecError(
            f"Slurm's MaxNodeCount of cluster {spec.name!r} is {spec.max_nodes}: "
            f"{len(spec.computes)} compute nodes + {adding} would be {total}; it is fixed at "
            f"boot: recreate the cluster with 'vhpc up --max-nodes {total}' (or more)"
        )


def check_subnet_room(spec: ClusterSpec, adding: int) -> None:
    """Refuse more compute nodes than the cluster's subnet has addresses for."""
    capacity = addressing.compute_capacity(spec.subnet)
    total = len(spec.computes) + adding
    if total > capacity:
        need = addressing.smallest_prefix_for(total)
        raise SpecError(
            f"subnet {spec.subnet} of cluster {spec.name!r} holds at most {capacity} compute "
            f"nodes: {len(spec.computes)} + {adding} would be {total}; the subnet is fixed at "
            f"boot: recreate the cluster with 'vhpc up --subnet "
            f"{spec.subnet.network_address}/{need}' (or larger)"
        )


def plan_add(spec: ClusterSpec, request: AddRequest, facts: HostFacts) -> tuple[NodeSpec, ...]:
    """The NodeSpecs of the nodes to add; raises a one-line UserError on bad input.

    Every bound (count, names, memory, CPUs, features, room left) is checked on the raw
    request before a list of that size is built.
    """
    request = site.group_request(spec, request)
    count = requested_count(request)
    check_subnet_room(spec, count)
    check_max_nodes(spec, count)
    memory = _memory(spec, request)
    bounds.check_cpus(request.cpus)
    features = bounds.check_features(request.features)
    gpu_count, gpu_type = gpus.parse_gpus(request.gpus)
    names = _names(spec, request, count)
    slots = addressing.free_compute_slots(spec.subnet, {n.slot for n in spec.nodes},
                                          len(names))
    cpusets = _cpusets(spec, request, facts, len(names))
    added = tuple(NodeSpec(name, NodeRole.COMPUTE, slot, cpuset, memory, features,
                           gpus=gpu_count, gpu_type=gpu_type)
                  for name, slot, cpuset in zip(names, slots, cpusets, strict=True))
    added = site.place_in_group(spec, request.group, added)
    added = fabric.place(spec, spec.nodes, added)  # their bridges (leaves past ~1000)
    check_host_memory(spec.with_nodes(spec.nodes + added), facts)
    return added


def check_removable(spec: ClusterSpec, names: list[str]) -> list[NodeSpec]:
    """The compute nodes to remove; refuses unknown names and service nodes."""
    if not names:
        raise SpecError("name the nodes to remove, e.g. vhpc node rm compute7")
    if len(names) > bounds.MAX_COMPUTE_NODES + bounds.SERVICE_NODES:
        raise SpecError(f"{len(names)} node names: cluster {spec.name!r} has "
                        f"{len(spec.nodes)} nodes")
    bounds.check_distinct(names)
    out = []
    for name in names:
        try:
            node = spec.node(name)
        except KeyError:
            raise NoSuchNodeError(f"cluster {spec.name!r} has no node {name!r}: "
                                  "'vhpc node ls' lists them") from None
        if node.role is not NodeRole.COMPUTE:
            raise SpecError(f"{name!r} is the cluster's {node.role.value} node: only compute "
                            "nodes can be removed, stopped or started")
        out.append(node)
    return out
