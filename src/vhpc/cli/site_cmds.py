"""Cluster files on the command line: `vhpc up -f FILE --share HOST[:PATH]`,
`vhpc spec check FILE` (validate and show what would be booted) and `vhpc spec schema`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
from click.core import ParameterSource

from vhpc import control
from vhpc.cli.output import out_console, print_json
from vhpc.errors import SpecError
from vhpc.spec import shares as share_spec
from vhpc.spec import sitefile
from vhpc.spec.load import ClusterOptions
from vhpc.spec.model import ClusterSpec
from vhpc.spec.paths import ClusterPaths
from vhpc.spec.placement import format_cpulist
from vhpc.spec.sizes import format_size

#: `up` options that map to ClusterOptions fields of the same name.
UP_FIELDS = ("nodes", "memory", "cpus", "cpuset", "subnet", "overcommit", "partition",
             "max_nodes", "pids_max", "gpus", "image")


def _given(ctx: click.Context, name: str) -> bool:
    """Whether the user set an option (command line or environment), not its default."""
    source = ctx.get_parameter_source(name)
    return source in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)


def up_options(ctx: click.Context, file: str | None, shares: tuple[str, ...],
               flags: ClusterOptions) -> ClusterOptions:
    """What `up` boots: the cluster file (if any) with the flags the user gave over it."""
    given_shares = tuple(share_spec.parse_share(s) for s in shares)
    if file is None:
        return sitefile.merge(flags, shares=given_shares or None)
    parent = ctx.parent
    name = flags.name if parent is not None and _given(parent, "cluster") else None
    options = sitefile.read_site(file, name)
    said: dict[str, Any] = {f: getattr(flags, f) for f in UP_FIELDS if _given(ctx, f)}
    merged = sitefile.merge(options, shares=given_shares or None, **said)
    merged = sitefile.merge(merged, extra=flags.extra)
    with naming_file(file):  # what the host refuses (memory, subnet, shares), with the file
        control.plan(merged)
    return merged


@contextmanager
def naming_file(file: str) -> Iterator[None]:
    """A SpecError raised inside names the cluster file it came from."""
    try:
        yield
    except SpecError as err:
        if err.message.startswith(f"{file}:"):
            raise
        raise SpecError(f"{file}: {err.message}", fix=err.fix) from None


def warn_invisible_cwd(spec: ClusterSpec, paths: ClusterPaths) -> None:
    """On stderr: the fix when the host's current directory is not where nodes see it."""
    try:
        cwd = os.getcwd()
    except OSError:
        return
    warning = share_spec.invisible_dir_warning(cwd, spec.shares, str(paths.home), spec.name)
    if warning is not None:
        click.echo(f"# warning: {warning}", err=True)  # one line, never wrapped


@click.group(name="spec")
def spec_group() -> None:
    """Cluster files: check one, or print their JSON Schema."""


@spec_group.command(name="check")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="The resolved spec as JSON.")
def check_cmd(file: str, as_json: bool) -> None:
    """Validate FILE against this host without booting; print its nodes and partitions."""
    options = sitefile.read_site(file)
    with naming_file(file):  # a host-dependent check (memory, subnet, shares)
        spec = control.plan(options)
    if as_json:
        print_json(spec_document(spec))
        return
    out_console.print(render_spec(spec, file), end="")


def spec_document(spec: ClusterSpec) -> dict[str, Any]:
    """The resolved cluster (nodes, partitions, shares) for `spec check --json`."""
    doc = spec.to_dict()
    doc.pop("net_id", None)  # allocated again at boot
    return doc


def render_spec(spec: ClusterSpec, file: str) -> str:
    """`spec check`'s text: the nodes by group, the partitions and the shares."""
    lines = [f"{file}: ok: cluster {spec.name!r}, {len(spec.computes)} compute nodes, "
             f"subnet {spec.subnet} (not booted)", "",
             f"{'NODE':<12}{'GROUP':<10}{'CPUS':>5}  {'MEMORY':>7}  {'GPUS':<8}{'RACK':<6}"
             "FEATURES"]
    for node in spec.computes:
        gpus = (f"{node.gpu_type}:{node.gpus}" if node.gpu_type else str(node.gpus)) \
            if node.gpus else "-"
        lines.append(f"{node.name:<12}{node.group or '-':<10}{node.cpus:>5}  "
                     f"{format_size(node.memory):>7}  {gpus:<8}{node.rack or '-':<6}"
                     f"{','.join(node.features) or '-'}  (CPUs {format_cpulist(node.cpuset)})")
    lines += ["", f"{'PARTITION':<12}{'DEFAULT':<9}{'MAXTIME':<12}{'TIER':>5}  NODES"]
    parts = spec.partitions or ()
    if not parts:
        lines.append(f"{spec.partition:<12}{'yes':<9}{'UNLIMITED':<12}{'-':>5}  all")
    for part in parts:
        lines.append(f"{part.name:<12}{'yes' if part.default else 'no':<9}"
                     f"{part.max_time or 'UNLIMITED':<12}{part.priority_tier or '-':>5}  "
                     f"{','.join(part.nodes) or '-'}")
    for share in spec.shares:
        lines.append(f"share: host {share.host} -> nodes {share.path} (read-write)")
    return "\n".join(lines) + "\n"


@spec_group.command(name="schema")
def schema_cmd() -> None:
    """Print the JSON Schema of cluster files (for editors: taplo, VS Code Even Better TOML)."""
    from vhpc.spec.sitefile_schema import json_schema_text

    click.echo(json_schema_text(), nl=False)
