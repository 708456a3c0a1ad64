"""Cluster and node descriptions as frozen dataclasses (Mininet's Topo idea: data first)."""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

#: Tasks (processes and threads) a compute node may hold unless `up --pids-max` says.
DEFAULT_PIDS_MAX = 1024
MIN_PIDS_MAX = 32  # slurmd, slurmstepd, a shell and a small MPI step with its threads
MAX_PIDS_MAX = 4194304  # the kernel's highest pid_max
#: Service nodes run slurmctld, etcd and dnsmasq, whose threads grow with the cluster.
SERVICE_PIDS_MAX = 8192
#: The cluster user's uid when a spec predates per-cluster ids.
LEGACY_USER_UID = 2000
#: The image of a cluster whose nodes run the host's own programs (no image root).
HOST_IMAGE = "host"


class NodeRole(StrEnum):
    """What a node is for; decides which daemons run in it."""

    CONTROLLER = "controller"
    DNS = "dns"
    DB = "db"  # MariaDB and slurmdbd (accounting)
    COMPUTE = "compute"


@dataclass(frozen=True)
class NodeSpec:
    """One node: its name, address slot in the subnet, CPUs and memory limit."""

    name: str
    role: NodeRole
    slot: int
    cpuset: tuple[int, ...]
    memory: int
    features: tuple[str, ...] = ()
    stopped: bool = False  # `vhpc node stop`: kept, but no daemon runs (survives adoption)
    group: str = ""  # node group (site file [[nodes]] group); "" = the default compute group
    rack: str = ""  # rack (switch) in topology.conf; "" = not in a rack
    gpus: int = 0  # fake GPUs given to the node (GRES gpu)
    gpu_type: str = ""  # GRES type of those GPUs ("a100"); "" = untyped
    leaf: int = -1  # leaf bridge the node's link is on (spec/fabric.py); -1 = the spine

    @property
    def cpus(self) -> int:
        """Number of CPUs the node is pinned to (what Slurm is told)."""
        return len(self.cpuset)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "name": self.name,
            "role": self.role.value,
            "slot": self.slot,
            "cpuset": list(self.cpuset),
            "memory": self.memory,
            "features": list(self.features),
            **({"stopped": True} if self.stopped else {}),
            **({"group": self.group} if self.group else {}),
            **({"rack": self.rack} if self.rack else {}),
            **({"gpus": self.gpus} if self.gpus else {}),
            **({"gpu_type": self.gpu_type} if self.gpu_type else {}),
            **({"leaf": self.leaf} if self.leaf >= 0 else {}),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NodeSpec:
        """Inverse of :meth:`to_dict`."""
        return cls(
            name=data["name"],
            role=NodeRole(data["role"]),
            slot=int(data["slot"]),
            cpuset=tuple(int(c) for c in data["cpuset"]),
            memory=int(data["memory"]),
            features=tuple(data.get("features", ())),
            stopped=bool(data.get("stopped", False)),
            group=str(data.get("group", "")),
            rack=str(data.get("rack", "")),
            gpus=int(data.get("gpus", 0)),
            gpu_type=str(data.get("gpu_type", "")),
            leaf=int(data.get("leaf", -1)),
        )


@dataclass(frozen=True)
class PartitionSpec:
    """A Slurm partition: the node groups it holds and its limits."""

    name: str
    groups: tuple[str, ...] = ()  # node groups in it; () = every compute node
    default: bool = False
    max_time: str = ""  # Slurm MaxTime ("1:00:00", "UNLIMITED"); "" = Slurm's default
    priority_tier: int = 0  # Slurm PriorityTier; 0 = Slurm's default (1)
    nodes: tuple[str, ...] = ()  # node names resolved from the groups when the spec was built

    def holds(self, node: NodeSpec) -> bool:
        """Whether a compute node belongs to this partition (by its group)."""
        return node.role is NodeRole.COMPUTE and (not self.groups or node.group in self.groups)

    def resolved(self, nodes: tuple[NodeSpec, ...]) -> PartitionSpec:
        """A copy whose `nodes` names the compute nodes of `nodes` it holds."""
        return replace(self, nodes=tuple(n.name for n in nodes if self.holds(n)))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "name": self.name,
            "groups": list(self.groups),
            "default": self.default,
            "max_time": self.max_time,
            "priority_tier": self.priority_tier,
            "nodes": list(self.nodes),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PartitionSpec:
        """Inverse of :meth:`to_dict`."""
        return cls(
            name=str(data["name"]),
            groups=tuple(str(g) for g in data.get("groups", ())),
            default=bool(data.get("default", False)),
            max_time=str(data.get("max_time", "")),
            priority_tier=int(data.get("priority_tier", 0)),
            nodes=tuple(str(n) for n in data.get("nodes", ())),
        )


@dataclass(frozen=True)
class ShareSpec:
    """A host directory bind-mounted read-write into every node at `path`."""

    host: str
    path: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"host": self.host, "path": self.path}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ShareSpec:
        """Inverse of :meth:`to_dict`."""
        return cls(host=str(data["host"]), path=str(data["path"]))


@dataclass(frozen=True)
class UserSpec:
    """A cluster user besides the default one: login name, Slurm account, uid (= gid)."""

    name: str
    account: str
    uid: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"name": self.name, "account": self.account, "uid": self.uid}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UserSpec:
        """Inverse of :meth:`to_dict`."""
        return cls(name=str(data["name"]), account=str(data["account"]), uid=int(data["uid"]))


@dataclass(frozen=True)
class ClusterSpec:
    """A whole cluster: name, network, Slurm settings and its nodes."""

    name: str
    subnet: ipaddress.IPv4Network
    nodes: tuple[NodeSpec, ...]
    partition: str = "vhpc"
    user: str = "cluser"
    user_uid: int = LEGACY_USER_UID  # per cluster (spec/users.py): uid and gid of `user`
    max_nodes: int = 1024
    overcommit: bool = False
    dns: bool = True
    options: dict[str, str] = field(default_factory=dict)
    net_id: str = ""  # allocated under the host lock (spec/ids.py); "" = derived from the name
    node_memory: int = 0  # `up --memory` in bytes: what `node add` gives a node by default
    pids_max: int = DEFAULT_PIDS_MAX  # `up --pids-max`: pids.max of each compute node
    accounting: bool = True  # a `db` node with MariaDB + slurmdbd (`up --no-accounting`: off)
    users: tuple[UserSpec, ...] = ()  # users besides `user` (whose account is "default")
    #: Site file partitions; () = one partition `partition` holding every compute node.
    partitions: tuple[PartitionSpec, ...] = ()
    shares: tuple[ShareSpec, ...] = ()  # host directories every node sees
    #: the nodes' root filesystem: "host" (the host's own) or a built image (`vhpc image`)
    image: str = HOST_IMAGE
    #: the Slurm version the nodes run ("24.11.5"), resolved at plan time from the image;
    #: "" in a spec written before it was recorded (the Debian 12 host's 22.05)
    slurm_version: str = ""

    @property
    def cluster_id(self) -> str:
        """Four hex digits naming the cluster's links: allocated unique on the host."""
        return self.net_id or hashlib.sha1(self.name.encode()).hexdigest()[:4]

    @property
    def bridge(self) -> str:
        """Name of the cluster's Linux bridge (at most 15 characters)."""
        return f"vh{self.cluster_id}-{self.name[:7]}"

    @property
    def host_ip(self) -> ipaddress.IPv4Address:
        """The host's address on the bridge (first address of the subnet)."""
        return self.subnet.network_address + 1

    @property
    def controller(self) -> NodeSpec:
        """The node that runs slurmctld."""
        return next(n for n in self.nodes if n.role is NodeRole.CONTROLLER)

    @property
    def computes(self) -> tuple[NodeSpec, ...]:
        """Compute nodes, in slot order."""
        return tuple(n for n in self.nodes if n.role is NodeRole.COMPUTE)

    def node(self, name: str) -> NodeSpec:
        """Look a node up by name (KeyError if absent)."""
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def pids_max_of(self, node: NodeSpec) -> int:
        """The node's pids.max: the cluster's for compute nodes, more for service nodes."""
        if node.role is NodeRole.COMPUTE:
            return self.pids_max
        return max(self.pids_max, SERVICE_PIDS_MAX)

    def ip_of(self, node: NodeSpec) -> ipaddress.IPv4Address:
        """A node's address: subnet base + its slot."""
        return self.subnet.network_address + node.slot

    def veth_of(self, node: NodeSpec) -> str:
        """Host-side veth name of a node (at most 15 characters)."""
        return f"vh{self.cluster_id}n{node.slot}"

    def with_nodes(self, nodes: tuple[NodeSpec, ...]) -> ClusterSpec:
        """A copy with another node list (the partitions' node lists follow it)."""
        return replace(self, nodes=nodes,
                       partitions=tuple(p.resolved(nodes) for p in self.partitions))

    def partitions_of(self, node: NodeSpec) -> tuple[str, ...]:
        """Names of the Slurm partitions a compute node is in."""
        if node.role is not NodeRole.COMPUTE:
            return ()
        if not self.partitions:
            return (self.partition,)
        return tuple(p.name for p in self.partitions if p.holds(node))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (written to the state directory as spec.json)."""
        return {
            "name": self.name,
            "subnet": str(self.subnet),
            "partition": self.partition,
            "user": self.user,
            "user_uid": self.user_uid,
            "max_nodes": self.max_nodes,
            "overcommit": self.overcommit,
            "dns": self.dns,
            "options": dict(self.options),
            **({"net_id": self.net_id} if self.net_id else {}),
            **({"node_memory": self.node_memory} if self.node_memory else {}),
            "pids_max": self.pids_max,
            "accounting": self.accounting,
            **({"users": [u.to_dict() for u in self.users]} if self.users else {}),
            **({"partitions": [p.to_dict() for p in self.partitions]} if self.partitions else {}),
            **({"shares": [s.to_dict() for s in self.shares]} if self.shares else {}),
            **({"image": self.image} if self.image != HOST_IMAGE else {}),
            **({"slurm_version": self.slurm_version} if self.slurm_version else {}),
            "nodes": [n.to_dict() for n in self.nodes],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClusterSpec:
        """Inverse of :meth:`to_dict`."""
        return cls(
            name=data["name"],
            subnet=ipaddress.IPv4Network(data["subnet"]),
            nodes=tuple(NodeSpec.from_dict(n) for n in data["nodes"]),
            partition=data.get("partition", "vhpc"),
            user=data.get("user", "cluser"),
            user_uid=int(data.get("user_uid", LEGACY_USER_UID)),
            max_nodes=int(data.get("max_nodes", 1024)),
            overcommit=bool(data.get("overcommit", False)),
            dns=bool(data.get("dns", True)),
            options=dict(data.get("options", {})),
            net_id=str(data.get("net_id", "")),
            node_memory=int(data.get("node_memory", 0)),
            pids_max=int(data.get("pids_max", DEFAULT_PIDS_MAX)),
            accounting=bool(data.get("accounting", False)),  # older specs: no db node
            users=tuple(UserSpec.from_dict(u) for u in data.get("users", ())),
            partitions=tuple(PartitionSpec.from_dict(p) for p in data.get("partitions", ())),
            shares=tuple(ShareSpec.from_dict(s) for s in data.get("shares", ())),
            image=str(data.get("image", HOST_IMAGE)),
            slurm_version=str(data.get("slurm_version", "")),
        )
