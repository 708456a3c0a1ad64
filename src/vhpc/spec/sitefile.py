"""The cluster file (`vhpc up -f site.toml`): TOML -> ClusterOptions, every key checked.

One parser for the CLI, `vhpc.Cluster(file=...)` and the pytest plugin. The file's shape
is the pydantic models of spec/sitefile_schema.py (`vhpc spec schema` prints their JSON
Schema); unknown keys, wrong types and impossible values are refused before anything is
made, with the file, the key, its line and the fix in one line. Reading the file is this
module's only I/O.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from vhpc.errors import SpecError
from vhpc.spec import bounds, gpus, groups, images, shares, users
from vhpc.spec.load import ClusterOptions, check_cluster_name, check_memory
from vhpc.spec.model import PartitionSpec, ShareSpec
from vhpc.spec.sitefile_schema import ClusterTable, SiteFile
from vhpc.spec.sizes import parse_size

MAX_FILE_SIZE = 1 << 20  # a site file of a megabyte is a mistake
TABLES = ("cluster", "nodes", "partitions", "shares")
Loc = tuple[str | int, ...]


def read_site(path: str | os.PathLike[str], name: str | None = None,
              fallback: str = "vhpc") -> ClusterOptions:
    """The options a cluster file describes (`name`, e.g. from -c, wins over the file's;
    `fallback` names a cluster neither names)."""
    path = Path(path)
    text = _read(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise SpecError(f"{path}: not valid TOML: {err}: fix the syntax (see "
                        "examples/sites/ for valid files)") from None
    return parse_site(data, text, str(path), name, fallback)


def _read(path: Path) -> str:
    try:
        if path.stat().st_size > MAX_FILE_SIZE:
            raise SpecError(f"{path}: {path.stat().st_size} bytes is too big for a cluster "
                            "file (at most 1 MiB): is it the right file?")
        return path.read_text()
    except FileNotFoundError:
        raise SpecError(f"cluster file {path} does not exist: give the path of a TOML file "
                        "(e.g. examples/sites/university.toml)") from None
    except (OSError, UnicodeDecodeError) as err:
        raise SpecError(f"cannot read cluster file {path}: {err}") from None


def legacy_shape(data: dict[str, Any]) -> dict[str, Any]:
    """Old plugin files put the cluster keys at the top level (`nodes = 2`): wrap them."""
    legacy = (data and "cluster" not in data and set(data) <= set(ClusterTable.model_fields)
              and not isinstance(data.get("nodes"), list))
    return {"cluster": data} if legacy else data


def parse_site(data: dict[str, Any], text: str, source: str,
               name: str | None = None, fallback: str = "vhpc") -> ClusterOptions:
    """Options from a decoded cluster file; `text` is used to find the line of a bad key."""
    data = legacy_shape(data)
    try:
        site = SiteFile.model_validate(data)
    except ValidationError as err:
        raise _pydantic_error(err, text, source) from None
    with _located(text, source, ()):
        return _options(site, text, source, name, fallback)


def _options(site: SiteFile, text: str, source: str, name: str | None,
             fallback: str) -> ClusterOptions:
    c = site.cluster
    fields: dict[str, Any] = {}
    with _located(text, source, ("cluster", "name")):
        fields["name"] = name or c.name or fallback
        if c.name is not None:
            check_cluster_name(c.name)
    for key in ("memory", "cpus", "cpuset", "subnet", "overcommit", "partition", "max_nodes",
                "pids_max", "accounting", "rack_size", "nodes", "image"):
        value = getattr(c, key)
        if value is not None:
            with _located(text, source, ("cluster", key)):
                fields[key] = _check_cluster_key(key, value)
    if c.features is not None:
        with _located(text, source, ("cluster", "features")):
            fields["features"] = bounds.check_features(c.features)
    if c.users is not None:
        with _located(text, source, ("cluster", "users")):
            users.parse_users(c.users, "users")
            fields["users"] = tuple(c.users)
    if c.gpus is not None:
        with _located(text, source, ("cluster", "gpus")):
            gpus.parse_gpus(c.gpus, "gpus")
            fields["gpus"] = c.gpus
    node_groups = _groups(site, text, source)
    if node_groups:
        if c.nodes is not None:
            with _located(text, source, ("cluster", "nodes")):
                raise SpecError("[cluster] nodes counts alike nodes; with [[nodes]] groups "
                                "give each group a count instead: remove it")
        fields["groups"] = node_groups
        fields["nodes"] = sum(g.count for g in node_groups)
    if site.partitions and not node_groups:
        with _located(text, source, ("partitions", 0)):
            raise SpecError("[[partitions]] need [[nodes]] groups to hold: describe the "
                            "nodes as groups, or use [cluster] partition for one partition")
    fields["partitions"] = _partitions(site, text, source, [g.name for g in node_groups])
    fields["shares"] = _shares(site, text, source)
    return ClusterOptions(**fields)


def _check_cluster_key(key: str, value: Any) -> Any:
    checks: dict[str, Callable[[Any], Any]] = {
        "memory": lambda v: check_memory(parse_size(v), "memory"),
        "cpus": bounds.check_cpus,
        "cpuset": lambda v: bounds.check_text(v, "cpuset"),
        "subnet": lambda v: bounds.check_text(v, "subnet", 64),
        "partition": bounds.check_partition,
        "max_nodes": lambda v: bounds.check_compute_count(v, "max_nodes"),
        "nodes": lambda v: bounds.check_compute_count(v, "nodes"),
        "pids_max": lambda v: bounds.check_int(v, "pids_max", 32, 4194304),
        "rack_size": lambda v: bounds.check_int(v, "rack_size", 1, bounds.MAX_COMPUTE_NODES),
        "image": lambda v: images.check_image_name(v, "image"),
    }
    check = checks.get(key)
    if check is not None:
        check(value)
    return value


def _groups(site: SiteFile, text: str, source: str) -> tuple[groups.NodeGroup, ...]:
    out = []
    for i, table in enumerate(site.nodes):
        with _located(text, source, ("nodes", i, "group")):
            groups.check_group_name(table.group)
        group = groups.NodeGroup(name=table.group, count=table.count, memory=table.memory,
                                 cpus=table.cpus, gpus=table.gpus or "",
                                 features=tuple(table.features), rack=table.rack)
        for key in ("count", "memory", "cpus", "gpus", "features", "rack"):
            with _located(text, source, ("nodes", i, key)):
                _check_group_key(group, key)
        out.append(group)
    if out:
        with _located(text, source, ("nodes",)):
            groups.check_groups(out)
    return tuple(out)


def _check_group_key(group: groups.NodeGroup, key: str) -> None:
    what = f"group {group.name!r}"
    if key == "count":
        bounds.check_int(group.count, f"{what}: count", 1, bounds.MAX_COMPUTE_NODES)
    elif key == "memory" and group.memory is not None:
        check_memory(parse_size(group.memory), f"{what}: memory")
    elif key == "cpus" and group.cpus is not None:
        bounds.check_int(group.cpus, f"{what}: cpus", 1, bounds.MAX_CPUS_PER_NODE)
    elif key == "gpus":
        gpus.parse_gpus(group.gpus, f"{what}: gpus")
    elif key == "features":
        bounds.check_features(group.features)
    elif key == "rack":
        groups.check_rack(group.rack)


def _partitions(site: SiteFile, text: str, source: str,
                group_names: Sequence[str]) -> tuple[PartitionSpec, ...]:
    out = []
    for i, table in enumerate(site.partitions):
        part = PartitionSpec(name=table.name, groups=tuple(table.nodes or ()),
                             default=table.default, max_time=str(table.max_time),
                             priority_tier=table.priority_tier)
        for key in groups.PARTITION_KEYS:
            with _located(text, source, ("partitions", i, key)):
                groups.check_partition_key(part, key, group_names)
        out.append(part)
    with _located(text, source, ("partitions",)):
        return groups.check_partitions(out, group_names)


def _shares(site: SiteFile, text: str, source: str) -> tuple[ShareSpec, ...]:
    out = []
    for i, table in enumerate(site.shares):
        with _located(text, source, ("shares", i, "host" if table.path is None else "path")):
            out.append(shares.check_share(ShareSpec(table.host, table.path or table.host)))
    with _located(text, source, ("shares",)):
        return shares.check_shares(out)


# -- errors with their place in the file -----------------------------------------------

@contextmanager
def _located(text: str, source: str, loc: Loc) -> Iterator[None]:
    """Prefix a SpecError raised inside with the file, the key and its line."""
    try:
        yield
    except SpecError as err:
        if err.message.startswith(source + ":"):
            raise
        raise SpecError(f"{_where(text, source, loc)}: {err.message}", fix=err.fix) from None


def _where(text: str, source: str, loc: Loc) -> str:
    line = find_line(text, loc)
    at = f" line {line}" if line else ""
    key = describe(loc)
    return f"{source}:{at}" + (f" {key}" if key else "")


def describe(loc: Loc) -> str:
    """A key's place as the user wrote it: `[cluster] memory`, `[[nodes]] #2 cpus`."""
    if not loc:
        return ""
    table = str(loc[0])
    if table == "cluster":
        return "[cluster]" + (f" {loc[1]}" if len(loc) > 1 else "")
    if table not in TABLES:
        return f"key {table!r}"
    head = f"[[{table}]]"
    if len(loc) > 1 and isinstance(loc[1], int):
        head += f" #{loc[1] + 1}"
        if len(loc) > 2:
            head += f" {loc[2]}"
    return head


def find_line(text: str, loc: Loc) -> int | None:
    """The 1-based line of the key at `loc` (or of its table), if it can be found."""
    lines = text.splitlines()
    start, table = 0, None
    if loc and str(loc[0]) in TABLES:
        table = str(loc[0])
        nth = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else 0
        header = re.compile(rf"^\s*\[\[\s*{table}\s*\]\]" if table != "cluster"
                            else r"^\s*\[\s*cluster\s*\]")
        found = [i for i, line in enumerate(lines) if header.match(line)]
        if nth >= len(found):
            return None
        start = found[nth]
    keys = [k for k in (loc[1:] if table else loc) if isinstance(k, str)]
    if not keys:
        return start + 1 if table else None
    pattern = re.compile(rf"^\s*\"?{re.escape(keys[0])}\"?\s*=")
    for i in range(start + (1 if table else 0), len(lines)):
        if i > start and table and lines[i].lstrip().startswith("["):
            break
        if pattern.match(lines[i]):
            return i + 1
    return start + 1 if table else None


def _pydantic_error(err: ValidationError, text: str, source: str) -> SpecError:
    """The first problem pydantic found, as one line: where, what, how to fix it."""
    first = err.errors()[0]
    loc = _field_loc(first["loc"])
    where = _where(text, source, loc)
    kind = first["type"]
    if kind == "extra_forbidden":
        known = ", ".join(_known_keys(loc))
        return SpecError(f"{where}: unknown key {str(loc[-1])!r}: known keys here are {known}"
                         " (see vhpc spec schema)")
    if kind == "missing":
        return SpecError(f"{where}: required key missing: add {loc[-1]!s} = ...")
    value = first.get("input")
    shown = repr(value) if len(repr(value)) < 40 else repr(value)[:37] + "..."
    return SpecError(f"{where}: {shown} has the wrong type ({first['msg'].lower()}): "
                     f"{_type_hint(loc)}")


def _field_loc(raw: Sequence[int | str]) -> Loc:
    """pydantic's location without its union-branch tags (`str`, `int`, `list[str]`)."""
    out: list[str | int] = []
    for part in raw:
        if isinstance(part, str) and (part in ("str", "int", "bool", "float")
                                      or "[" in part or part.startswith("function")):
            continue
        out.append(part)
    return tuple(out)


def _known_keys(loc: Loc) -> list[str]:
    from vhpc.spec import sitefile_schema as schema

    model: Any = {"cluster": ClusterTable, "nodes": schema.NodesTable,
                  "partitions": schema.PartitionTable, "shares": schema.ShareTable}.get(
        str(loc[0]), SiteFile) if len(loc) > 1 else SiteFile
    return sorted(model.model_fields)


def _type_hint(loc: Loc) -> str:
    from vhpc.spec import sitefile_schema as schema

    key = str(loc[-1]) if loc else ""
    return schema.HINTS.get(key, "see vhpc spec schema for the key's type")


def merge(options: ClusterOptions, **given: Any) -> ClusterOptions:
    """The file's options with what the command line said replacing them (None: not said)."""
    said = {k: v for k, v in given.items() if v is not None}
    if "nodes" in said and options.groups:
        raise SpecError("-n counts alike nodes, but the cluster file has [[nodes]] groups: "
                        "change the groups' count in the file instead")
    if "partition" in said and options.partitions:
        raise SpecError("--partition names the one partition of alike nodes, but the cluster "
                        "file has [[partitions]]: rename them in the file instead")
    if "shares" in said:
        said["shares"] = options.shares + tuple(said["shares"])
    return dataclasses.replace(options, **said)
