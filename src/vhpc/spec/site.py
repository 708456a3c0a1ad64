"""A site's node groups, partitions, racks and shares applied to a cluster spec (pure).

`load.build_spec` builds the cluster as the flags describe it (N alike `computeI` nodes);
when the options carry node groups (a cluster file's `[[nodes]]`), `apply_site` replaces
those nodes with the groups' nodes, then adds partitions, racks and shares.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from vhpc.errors import SpecError
from vhpc.spec import addressing, bounds, gpus, groups, placement
from vhpc.spec.load import ClusterOptions, HostFacts, check_memory, check_node_name
from vhpc.spec.model import ClusterSpec, NodeRole, NodeSpec, PartitionSpec
from vhpc.spec.shares import check_shares
from vhpc.spec.sizes import parse_size

if TYPE_CHECKING:
    from vhpc.spec.grow import AddRequest  # grow builds on this module


def group_nodes(options: ClusterOptions, facts: HostFacts,
                default_memory: int) -> tuple[NodeSpec, ...]:
    """The compute nodes of every group, in group order, with slots from the first one."""
    groups.check_groups(options.groups)
    fixed = None
    if options.cpuset is not None:
        fixed = placement.parse_cpulist(options.cpuset)
        placement.check_cpus_exist(fixed, facts.online_cpus, f"--cpuset {options.cpuset}")
    nodes: list[NodeSpec] = []
    offset = 0
    for group in options.groups:
        what = f"group {group.name!r}"
        memory = default_memory if group.memory is None else parse_size(group.memory)
        check_memory(memory, f"{what}: memory")
        per_node = bounds.check_cpus(group.cpus if group.cpus is not None else options.cpus)
        gpu_count, gpu_type = gpus.parse_gpus(group.gpus or options.gpus, f"{what}: gpus")
        features = groups.group_features(group)
        for i in range(group.count):
            name = f"{group.name}{i}"
            check_node_name(name)
            if fixed is not None:
                cpuset = fixed
            else:
                cpuset = groups.deal_cpus(per_node, facts.online_cpus, offset)
                offset += per_node
            nodes.append(NodeSpec(name, NodeRole.COMPUTE,
                                  addressing.FIRST_COMPUTE_SLOT + len(nodes), cpuset, memory,
                                  features, group=group.name, rack=group.rack,
                                  gpus=gpu_count, gpu_type=gpu_type))
    return tuple(nodes)


def apply_site(spec: ClusterSpec, options: ClusterOptions, facts: HostFacts) -> ClusterSpec:
    """`spec` with the options' groups (as its compute nodes), partitions and shares."""
    shares = check_shares(options.shares)
    if not options.groups:
        if options.partitions:
            raise SpecError("[[partitions]] need [[nodes]] groups to hold: describe the "
                            "nodes as groups, or use --partition NAME for one partition")
        return replace(spec, shares=shares)
    computes = group_nodes(options, facts, spec.node_memory)
    addressing.check_capacity(spec.subnet, len(computes))
    if len(computes) > spec.max_nodes:
        raise SpecError(f"the groups have {len(computes)} nodes but max_nodes is "
                        f"{spec.max_nodes}: raise max_nodes to {len(computes)} or more")
    services = tuple(n for n in spec.nodes if n.role is not NodeRole.COMPUTE)
    nodes = groups.rack_fill(services + computes, options.rack_size)
    names = [g.name for g in options.groups]
    partitions = groups.check_partitions(options.partitions, names)
    out = replace(spec, shares=shares, partitions=partitions).with_nodes(nodes)
    return out


def add_group_defaults(spec: ClusterSpec, group: str) -> NodeSpec:
    """The first node of `group` in the cluster: what `node add --group` copies."""
    for node in spec.computes:
        if node.group == group:
            return node
    known = sorted({n.group for n in spec.computes if n.group})
    have = ", ".join(known) if known else "none: this cluster was not booted from groups"
    raise SpecError(f"cluster {spec.name!r} has no node group {group!r} (groups: {have})")


def default_partition(spec: ClusterSpec) -> PartitionSpec | None:
    """The cluster's default partition from its site file, if it has partitions."""
    return next((p for p in spec.partitions if p.default), None)


def group_request(spec: ClusterSpec, request: AddRequest) -> AddRequest:
    """`node add --group G`: the request with G's memory, CPUs, GPUs, features and names
    (`G<next>`) wherever the request itself says nothing."""
    if not request.group:
        if spec.partitions and all(p.groups for p in spec.partitions):
            known = ", ".join(sorted({n.group for n in spec.computes if n.group}))
            raise SpecError(f"cluster {spec.name!r} has partitions of node groups: a node "
                            f"outside them would be in none: give --group ({known})")
        return request
    template = add_group_defaults(spec, request.group)
    count = request.count or (0 if request.names else 1)
    names = request.names or tuple(
        groups.next_in_group([n.name for n in spec.nodes], request.group,
                             _bounded_count(count)))
    return replace(
        request, names=names, count=0,
        memory=f"{template.memory // 1024}K" if request.memory is None else request.memory,
        cpus=template.cpus if request.cpus is None and request.cpuset is None
        else request.cpus,
        features=tuple(dict.fromkeys((*template.features, *request.features))),
        gpus=request.gpus or gpus.format_gpus(template.gpus, template.gpu_type),
    )


def _bounded_count(count: int) -> int:
    return bounds.check_int(count, "--count", 1, bounds.MAX_COMPUTE_NODES)


def place_in_group(spec: ClusterSpec, group: str,
                   added: tuple[NodeSpec, ...]) -> tuple[NodeSpec, ...]:
    """New nodes of `group` (or "" for none) put in the group and in its last node's rack."""
    if not group:
        return added
    rack = next((n.rack for n in reversed(spec.computes) if n.group == group), "")
    return tuple(replace(n, group=group, rack=rack) for n in added)
