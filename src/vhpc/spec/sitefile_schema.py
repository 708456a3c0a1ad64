"""The shape of a cluster file as pydantic models: what spec/sitefile.py validates the
decoded TOML against, and what `vhpc spec schema` prints as JSON Schema for editors.

Strict: TOML has real types, so `count = "8"` is refused (not coerced) and every table
forbids keys it does not know. Value checks (sizes, names, bounds) are sitefile.py's.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_ID = "https://vhpc.invalid/schema/site.json"

#: The fix for a key given with the wrong type.
HINTS = {
    "name": 'give text, e.g. name = "uni"',
    "group": 'give text, e.g. group = "cpu"',
    "memory": 'give a size, e.g. memory = "1G" (or a number of MiB: memory = 512)',
    "cpus": "give a whole number, e.g. cpus = 2",
    "count": "give a whole number, e.g. count = 8",
    "nodes": 'give a list of group names, e.g. nodes = ["cpu", "gpu"] '
             "([cluster] nodes: a whole number)",
    "gpus": 'give a number or TYPE:N, e.g. gpus = 2 or gpus = "a100:2"',
    "features": 'give a list of words, e.g. features = ["intel", "avx512"]',
    "users": 'give a list of "name:account", e.g. users = ["alice:physics"]',
    "default": "give true or false, e.g. default = true",
    "overcommit": "give true or false",
    "accounting": "give true or false",
    "max_time": 'give a Slurm time as text, e.g. max_time = "04:00:00"',
    "priority_tier": "give a whole number, e.g. priority_tier = 10",
    "host": 'give an absolute host path as text, e.g. host = "/srv/data"',
    "path": 'give an absolute node path as text, e.g. path = "/data"',
    "rack": 'give text, e.g. rack = "r2"',
    "subnet": 'give CIDR text, e.g. subnet = "10.201.3.0/24"',
    "max_nodes": "give a whole number, e.g. max_nodes = 64",
    "pids_max": "give a whole number, e.g. pids_max = 2048",
    "rack_size": "give a whole number, e.g. rack_size = 16",
    "image": 'give an image name as text, e.g. image = "debian13"',
    "partition": 'give text, e.g. partition = "batch"',
    "cpuset": 'give a CPU list as text, e.g. cpuset = "0-1"',
    "cluster": "make it a table: [cluster]",
    "shares": "make it an array of tables: [[shares]]",
    "partitions": "make it an array of tables: [[partitions]]",
}


def _opt(description: str) -> Any:
    """An optional key (None: not given) with its description for the schema."""
    return Field(default=None, description=description)


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ClusterTable(_Table):
    """[cluster]: the cluster as a whole and the defaults of every node."""

    name: str | None = _opt("Cluster name (the -c name unless -c is given).")
    nodes: int | None = _opt("Alike compute nodes compute0..N-1 when "
                              "there are no [[nodes]] groups (default 4).")
    memory: str | int | None = _opt('Default memory per node, a hard '
                                     'cgroup cap: "1G", "125M", or MiB as a number.')
    cpus: int | None = _opt("Default CPUs per node (default 1).")
    cpuset: str | None = _opt('One CPU list for every node, e.g. "0-1".')
    gpus: str | int | None = _opt('Default fake GPUs per node: 2 or "a100:2".')
    features: list[str] | None = _opt("Slurm features of the alike nodes.")
    users: list[str] | None = _opt('Cluster users, "name:account" each.')
    accounting: bool | None = _opt("slurmdbd + MariaDB (default true).")
    subnet: str | None = _opt("Cluster subnet in CIDR notation.")
    partition: str | None = _opt("The one partition's name when there "
                                  "are no [[partitions]] (default vhpc).")
    max_nodes: int | None = _opt("Slurm MaxNodeCount: most compute nodes "
                                  "the cluster may grow to.")
    pids_max: int | None = _opt("Tasks a compute node may hold.")
    overcommit: bool | None = _opt("Allow more node memory than the host has.")
    rack_size: int | None = _opt("Nodes per default rack r1, r2... "
                                  "(default 16).")
    image: str | None = _opt('Root filesystem of the nodes: "host" (default) or a '
                             'built image, e.g. "debian13" (vhpc image build).')


class NodesTable(_Table):
    """[[nodes]]: a group of alike nodes named <group>0..<group>N-1."""

    group: str = Field(description="Group name; nodes are <group>0, <group>1...")
    count: int = Field(default=1, description="Number of nodes.")
    memory: str | int | None = _opt("Memory per node (default: [cluster]).")
    cpus: int | None = _opt("CPUs per node (default: [cluster]).")
    gpus: str | int | None = _opt('Fake GPUs per node: 2 or "a100:2".')
    features: list[str] = Field(default_factory=list, description="Slurm features (the "
                                "group's name is always one).")
    rack: str = Field(default="", description="Rack (topology.conf switch); by default "
                      "racks r1, r2... fill in order.")


class PartitionTable(_Table):
    """[[partitions]]: a Slurm partition over node groups."""

    name: str = Field(description="Partition name (sbatch -p NAME).")
    nodes: list[str] | None = _opt("Node groups in it (default: all).")
    default: bool = Field(default=False, description="The default partition (default: the first).")
    max_time: str | int = Field(default="", description='Slurm MaxTime: "04:00:00", "1-00:00:00", '
                                '"UNLIMITED" or minutes.')
    priority_tier: int = Field(default=0, description="Slurm PriorityTier (0-65533).")


class ShareTable(_Table):
    """[[shares]]: a host directory bind-mounted read-write into every node."""

    host: str = Field(description="Existing absolute host directory (never deleted by vhpc).")
    path: str | None = _opt("Where nodes see it (default: the host path).")


class SiteFile(_Table):
    """A vhpc cluster file (vhpc up -f FILE)."""

    cluster: ClusterTable = Field(default_factory=lambda: ClusterTable())
    nodes: list[NodesTable] = Field(default_factory=list)
    partitions: list[PartitionTable] = Field(default_factory=list)
    shares: list[ShareTable] = Field(default_factory=list)


def json_schema() -> dict[str, Any]:
    """The cluster file's JSON Schema (draft 2020-12, as pydantic writes it)."""
    schema = SiteFile.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = SCHEMA_ID
    schema["title"] = "vhpc cluster file"
    return schema


def json_schema_text() -> str:
    """The schema as indented JSON text."""
    return json.dumps(json_schema(), indent=2) + "\n"
