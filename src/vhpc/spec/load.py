"""Build a validated ClusterSpec from user options and facts about the host (still no I/O)."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from vhpc.errors import SpecError
from vhpc.spec import addressing, bounds, endpoints, fabric, gpus, ids, images, placement, users
from vhpc.spec.groups import DEFAULT_RACK_SIZE, NodeGroup
from vhpc.spec.model import (
    DEFAULT_PIDS_MAX,
    HOST_IMAGE,
    MAX_PIDS_MAX,
    MIN_PIDS_MAX,
    ClusterSpec,
    NodeRole,
    NodeSpec,
    PartitionSpec,
    ShareSpec,
)
from vhpc.spec.sizes import MIB, format_size, parse_size

# Measured on Debian 12 (bench/memory_floor.py, results/memory_floor.json): slurmd
# registers and `srun hostname` runs at 6 MiB; at 4 MiB the node's processes are
# OOM-killed. 16 MiB leaves room for slurmstepd, a shell and a small job step.
MIN_NODE_MEMORY = 16 * MIB
#: A node's memory unless --memory says: enough for a Python worker of a workflow tool,
#: capped (default_node_memory) so the default cluster fits the host. The seed had 125M.
DEFAULT_NODE_MEMORY = "1G"
#: The share of the host's memory the nodes of a cluster get by default (the rest is the
#: host's and the service nodes').
DEFAULT_HOST_SHARE = 0.5
CONTROLLER_MEMORY = 512 * MIB
DNS_MEMORY = 256 * MIB
#: mariadbd (~60 MB RSS with vhpc's small buffers) + slurmdbd (~5 MB), with headroom
DB_MEMORY = 192 * MIB
CONTROLLER_NAME = "slurm"
DNS_NAME = "dns"
DB_NAME = "db"
COMPUTE_PREFIX = "compute"
RESERVED_NAMES = frozenset({CONTROLLER_NAME, DNS_NAME, DB_NAME, "localhost", "host"})

#: a cluster's name (it names the state directory, the bridge and cgroups; trash too)
CLUSTER_NAME_PATTERN = r"[a-z][a-z0-9-]{0,30}"
_CLUSTER_NAME_RE = re.compile(rf"^{CLUSTER_NAME_PATTERN}$")
_HOSTNAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


@dataclass(frozen=True)
class HostFacts:
    """What the host has, gathered by the runtime and passed in (keeps this module pure)."""

    online_cpus: tuple[int, ...]
    mem_total: int
    taken_subnets: tuple[ipaddress.IPv4Network, ...] = ()
    host_addresses: tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...] = ()
    links: frozenset[str] = frozenset()  # names of the host's network interfaces
    cluster_ids: frozenset[str] = frozenset()  # ids used by the other clusters on the host
    host_ids: frozenset[int] = frozenset()  # uids and gids of the host's passwd and group


@dataclass(frozen=True)
class ClusterOptions:
    """What the user asked for on the command line or in Python."""

    name: str = "vhpc"
    nodes: int = 4
    memory: str | int | None = None  # None: DEFAULT_NODE_MEMORY capped to the host
    cpus: int | None = None
    cpuset: str | None = None
    subnet: str | None = None
    overcommit: bool = False
    partition: str = "vhpc"
    max_nodes: int | None = None
    features: tuple[str, ...] = ()
    extra: tuple[tuple[str, str], ...] = ()  # -> ClusterSpec.options (listen, graphite...)
    pids_max: int | None = None  # pids.max of each compute node (None: DEFAULT_PIDS_MAX)
    users: tuple[str, ...] = ()  # extra cluster users, "name:account" each (`up --users`)
    accounting: bool = True  # MariaDB + slurmdbd in a `db` node (`up --no-accounting`: False)
    # A site (cluster file, spec/sitefile.py): node groups replace the `nodes` alike ones.
    groups: tuple[NodeGroup, ...] = ()
    partitions: tuple[PartitionSpec, ...] = ()  # () = one partition `partition`, all nodes
    shares: tuple[ShareSpec, ...] = ()  # host directories bind-mounted into every node
    rack_size: int = DEFAULT_RACK_SIZE  # nodes per default rack (r1, r2...)
    gpus: str | int = ""  # fake GPUs of every compute node: 2 or "a100:2" (`up --gpus`)
    image: str = HOST_IMAGE  # the nodes' root: "host" or a built image (`up --image`)


def check_cluster_name(name: str) -> None:
    """Cluster names become paths, bridge and cgroup names: keep them short and plain."""
    if not _CLUSTER_NAME_RE.fullmatch(name):
        raise SpecError(
            f"invalid cluster name {name!r}: use 1-31 lowercase letters, digits or '-', "
            "starting with a letter (e.g. -c lab1)"
        )


def check_node_name(name: str) -> None:
    """A node name is its hostname: RFC 1123 label, lowercase."""
    if not _HOSTNAME_RE.fullmatch(name):
        raise SpecError(
            f"invalid node name {name!r}: a hostname is 1-63 lowercase letters, digits or '-', "
            "not starting or ending with '-' (e.g. compute12)"
        )
    if name in RESERVED_NAMES:
        raise SpecError(f"node name {name!r} is reserved for a service node: pick another name")


def check_memory(memory: int, what: str) -> None:
    """Refuse a node memory limit below what slurmd needs to start (or absurdly high)."""
    if memory > bounds.MAX_NODE_MEMORY:
        raise SpecError(f"{what}: memory {format_size(memory)} is more than the "
                        f"{format_size(bounds.MAX_NODE_MEMORY)} a node may have: use e.g. 1G")
    if memory < MIN_NODE_MEMORY:
        raise SpecError(
            f"{what}: memory {format_size(memory)} is below the {format_size(MIN_NODE_MEMORY)} "
            f"slurmd needs to start: use --memory {format_size(MIN_NODE_MEMORY)} or more"
        )


def default_node_memory(options: ClusterOptions, facts: HostFacts) -> int:
    """DEFAULT_NODE_MEMORY, or less when the nodes would take more than DEFAULT_HOST_SHARE of
    what the host has beside the service nodes (never below MIN_NODE_MEMORY): a hard
    cgroup cap either way."""
    count = sum(g.count for g in options.groups) if options.groups else options.nodes
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        count = 1  # the count's own check says what is wrong
    services = CONTROLLER_MEMORY + DNS_MEMORY + (DB_MEMORY if options.accounting else 0)
    fair = int(max(0, facts.mem_total - services) * DEFAULT_HOST_SHARE) // count // MIB * MIB
    return max(MIN_NODE_MEMORY, min(parse_size(DEFAULT_NODE_MEMORY), fair))


def check_host_memory(spec: ClusterSpec, facts: HostFacts) -> None:
    """Refuse more node memory than the host has unless overcommit was asked for."""
    total = sum(n.memory for n in spec.nodes)
    if total > facts.mem_total and not spec.overcommit:
        raise SpecError(
            f"the nodes' memory limits add up to {format_size(total)} but the host has "
            f"{format_size(facts.mem_total)}: use fewer nodes, a smaller --memory, or "
            "--overcommit (jobs may then push the host into swapping or its OOM killer)"
        )


def choose_subnet(options: ClusterOptions, facts: HostFacts,
                  computes: int) -> ipaddress.IPv4Network:
    """The user's subnet (validated) or the first free /24 (or larger, if N needs it)."""
    if options.subnet is None:
        prefix = min(24, addressing.smallest_prefix_for(addressing.with_headroom(computes)))
        return addressing.pick_subnet(list(facts.taken_subnets), prefix)
    try:
        subnet = ipaddress.IPv4Network(options.subnet, strict=False)
    except ValueError:
        raise SpecError(
            f"invalid subnet {options.subnet!r}: use CIDR notation, e.g. 10.201.3.0/24"
        ) from None
    if subnet.prefixlen > 28:
        raise SpecError(f"subnet {subnet} is too small: use a /28 or larger (e.g. /24)")
    clash = next((t for t in facts.taken_subnets if subnet.overlaps(t)), None)
    if clash is not None:
        raise SpecError(
            f"subnet {subnet} overlaps {clash}, already in use on this host: pick another"
        )
    addressing.check_private(subnet)
    addressing.check_host_addresses(subnet, facts.host_addresses)
    addressing.check_capacity(subnet, computes)
    return subnet


def check_options(options: ClusterOptions,
                  facts: HostFacts) -> tuple[int, ipaddress.IPv4Network]:
    """Every bound and every option of `up`, before anything is built.

    Returns the node memory in bytes and the subnet (the user's, or the first free one).
    """
    check_cluster_name(options.name)
    if isinstance(options.nodes, int) and not isinstance(options.nodes, bool) \
            and options.nodes < 1:
        raise SpecError(f"-n {options.nodes}: a cluster needs at least one compute node (-n 1)")
    bounds.check_compute_count(options.nodes)
    if options.memory is None:
        memory = default_node_memory(options, facts)
    else:
        memory = parse_size(options.memory)
        check_memory(memory, "--memory")
    bounds.check_cpus(options.cpus)
    if options.cpuset is not None:
        placement.parse_cpulist(options.cpuset)
    if options.max_nodes is not None:
        bounds.check_compute_count(options.max_nodes, "--max-nodes")
    bounds.check_partition(options.partition)
    users.parse_users(options.users)
    bounds.check_features(options.features)
    gpus.parse_gpus(options.gpus)
    images.check_image_name(options.image, "--image")
    if options.pids_max is not None:
        bounds.check_int(options.pids_max, "--pids-max", MIN_PIDS_MAX, MAX_PIDS_MAX,
                         "tasks, threads included, a node may hold")
    subnet = choose_subnet(options, facts, options.nodes)
    bridge_ip = subnet.network_address + addressing.HOST_SLOT  # --listen may name it
    check_extra(dict(options.extra), (*facts.host_addresses, bridge_ip))
    return memory, subnet


def check_extra(extra: dict[str, str],
                host_addresses: tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...],
                ) -> None:
    """The options kept in spec.options: endpoints and the sampling interval."""
    for key, value in extra.items():
        bounds.check_text(str(value), f"--{key.replace('_', '-')}",
                          endpoints.MAX_ENDPOINT_LENGTH)
    endpoints.check_endpoints(extra, host_addresses)
    interval = extra.get("sample_interval")
    if interval is not None:
        try:
            seconds = float(interval)
        except ValueError:
            seconds = -1.0
        if not 0.2 <= seconds <= 3600:
            raise SpecError(f"--sample-interval {interval!r}: give seconds from 0.2 to 3600")


def build_spec(options: ClusterOptions, facts: HostFacts) -> ClusterSpec:
    """Validate options against the host and return the cluster description."""
    memory, subnet = check_options(options, facts)
    if options.subnet is None and options.nodes > addressing.compute_capacity(subnet):
        addressing.check_capacity(subnet, options.nodes)
    cpusets = compute_cpusets(options, facts, options.nodes)
    online = facts.online_cpus
    services: tuple[NodeSpec, ...] = (
        NodeSpec(CONTROLLER_NAME, NodeRole.CONTROLLER, addressing.CONTROLLER_SLOT, online,
                 CONTROLLER_MEMORY),
        NodeSpec(DNS_NAME, NodeRole.DNS, addressing.DNS_SLOT, online, DNS_MEMORY),
    )
    if options.accounting:
        services += (NodeSpec(DB_NAME, NodeRole.DB, addressing.DB_SLOT, online, DB_MEMORY),)
    features = bounds.check_features(options.features)
    gpu_count, gpu_type = gpus.parse_gpus(options.gpus)
    computes = tuple(
        NodeSpec(f"{COMPUTE_PREFIX}{i}", NodeRole.COMPUTE, addressing.FIRST_COMPUTE_SLOT + i,
                 cpusets[i], memory, features, gpus=gpu_count, gpu_type=gpu_type)
        for i in range(options.nodes)
    )
    capacity = min(addressing.compute_capacity(subnet), bounds.MAX_COMPUTE_NODES)
    max_nodes = capacity if options.max_nodes is None else options.max_nodes
    if max_nodes < options.nodes:
        raise SpecError(f"--max-nodes {max_nodes} is below -n {options.nodes}: raise --max-nodes")
    if max_nodes > capacity:
        raise SpecError(f"--max-nodes {max_nodes}: subnet {subnet} holds at most {capacity} "
                        f"compute nodes: use --max-nodes {capacity} or a larger --subnet")
    net_id = ids.allocate_cluster_id(options.name, facts.cluster_ids, facts.links)
    user_uid = users.cluster_uid(net_id, facts.host_ids)
    extra_users = users.assign_users(users.parse_users(options.users), net_id,
                                     facts.host_ids, {user_uid})
    spec = ClusterSpec(
        name=options.name,
        subnet=subnet,
        nodes=services + computes,
        partition=options.partition,
        max_nodes=max_nodes,
        overcommit=options.overcommit,
        options=dict(options.extra),
        net_id=net_id,
        node_memory=memory,
        user_uid=user_uid,
        accounting=options.accounting,
        users=extra_users,
        pids_max=DEFAULT_PIDS_MAX if options.pids_max is None else options.pids_max,
        image=options.image,
    )
    if options.groups or options.partitions or options.shares:
        spec = _apply_site(spec, options, facts)
    spec = fabric.place_all(spec)  # which bridge each node hangs on
    check_host_memory(spec, facts)
    return spec


def _apply_site(spec: ClusterSpec, options: ClusterOptions, facts: HostFacts) -> ClusterSpec:
    """The options' node groups, partitions and shares (spec/site.py builds on this module)."""
    from vhpc.spec.site import apply_site

    return apply_site(spec, options, facts)


def compute_cpusets(options: ClusterOptions, facts: HostFacts, count: int,
                    start: int = 0) -> list[tuple[int, ...]]:
    """CPU sets for `count` new compute nodes: explicit list, N per node, or 1 round-robin."""
    if options.cpuset is not None:
        cpus = placement.parse_cpulist(options.cpuset)
        placement.check_cpus_exist(cpus, facts.online_cpus, f"--cpuset {options.cpuset}")
        return [cpus] * count
    return placement.round_robin(count, bounds.check_cpus(options.cpus), facts.online_cpus,
                                 start)
