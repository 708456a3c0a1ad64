"""`vhpc node add|ls|rm|stop|start`: compute nodes at run time (thin client of the API)."""

from __future__ import annotations

import sys
import time

import click
from rich.console import Console
from rich.table import Table

from vhpc import control
from vhpc.cli.render import mib, print_json

err_console = Console(stderr=True)
out_console = Console(width=None if sys.stdout.isatty() else 200)


def _span(names: list[str]) -> str:
    return ", ".join(names) if len(names) <= 4 else f"{names[0]}..{names[-1]}"


@click.group(name="node")
def node_group() -> None:
    """Add, list, remove, stop and start compute nodes of a running cluster."""


@node_group.command(name="add")
@click.argument("names", nargs=-1)
@click.option("--count", type=int, default=0, help="Add N nodes named after the last computeN.")
@click.option("--memory", default=None, help="Memory limit per node (default: as the others).")
@click.option("--cpus", type=int, default=None, help="CPUs per node (round-robin; default 1).")
@click.option("--cpuset", default=None, help="Explicit CPU list for every new node, e.g. 1.")
@click.option("--features", default="", help="Slurm features, e.g. a,b.")
@click.option("--no-wait", is_flag=True, help="Return before the nodes are idle in Slurm.")
@click.option("--json", "as_json", is_flag=True, help="Print the new records as JSON.")
@click.pass_obj
def add(obj: dict[str, str], names: tuple[str, ...], count: int, memory: str | None,
        cpus: int | None, cpuset: str | None, features: str, no_wait: bool,
        as_json: bool) -> None:
    """Add compute nodes: vhpc node add compute4 compute5 | vhpc node add --count 12"""
    client = control.ensure_manager(obj["cluster"])
    start = time.monotonic()
    added = client.add_nodes(list(names), count, memory, cpus, cpuset,
                             [f for f in features.split(",") if f], wait=not no_wait)
    if as_json:
        print_json(added)
        return
    new = [a["name"] for a in added]
    state = "started" if no_wait else "idle"
    err_console.print(f"added {len(new)} node{'s' * (len(new) != 1)} ({_span(new)}), {state} "
                      f"in {time.monotonic() - start:.2f}s")


@node_group.command(name="ls")
@click.option("--json", "as_json", is_flag=True, help="JSON for scripts.")
@click.pass_obj
def ls(obj: dict[str, str], as_json: bool) -> None:
    """Nodes with their registry state (up/stopped/lost/draining) and Slurm state."""
    nodes = control.ensure_manager(obj["cluster"]).nodes()
    if as_json:
        print_json(nodes)
        return
    table = Table(box=None, header_style="bold")
    for col in ("NODE", "ROLE", "IP", "CPUS", "MEMORY", "FEATURES", "STATE", "SLURM", "REASON"):
        table.add_column(col)
    for n in nodes:
        table.add_row(n["name"], n["role"], n["ip"], n["cpuset"], mib(n["memory"]),
                      ",".join(n["features"]), n["state"], n["slurm_state"], n["reason"])
    out_console.print(table)


@node_group.command(name="rm")
@click.argument("names", nargs=-1, required=True)
@click.option("--drain", is_flag=True, help="Wait for the nodes' running jobs to end first.")
@click.pass_obj
def rm(obj: dict[str, str], names: tuple[str, ...], drain: bool) -> None:
    """Remove compute nodes (from Slurm, DNS, the registry and the host)."""
    leftovers = control.ensure_manager(obj["cluster"]).remove_nodes(list(names), drain)
    if leftovers:
        raise click.ClickException("could not remove: " + "; ".join(leftovers))
    err_console.print(f"removed {_span(list(names))}")


@node_group.command(name="stop")
@click.argument("names", nargs=-1, required=True)
@click.pass_obj
def stop(obj: dict[str, str], names: tuple[str, ...]) -> None:
    """Stop nodes: every process ends, DOWN in Slurm ("stopped by vhpc"), out of DNS."""
    client = control.ensure_manager(obj["cluster"])
    for name in names:
        client.stop_node(name)
    err_console.print(f"stopped {_span(list(names))}")


@node_group.command(name="start")
@click.argument("names", nargs=-1, required=True)
@click.pass_obj
def start(obj: dict[str, str], names: tuple[str, ...]) -> None:
    """Start stopped nodes again; they return to idle."""
    client = control.ensure_manager(obj["cluster"])
    for name in names:
        client.start_node(name)
    err_console.print(f"started {_span(list(names))}")
