"""`vhpc node add|ls|rm|stop|start`: compute nodes at run time (thin client of the API)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import click
from rich.progress import Progress
from rich.table import Table

from vhpc import control
from vhpc.cli.completion import node_names
from vhpc.cli.output import out_console, plain, print_json, say, waiting
from vhpc.cli.render import mib
from vhpc.client import ManagerClient
from vhpc.spec.bounds import check_distinct
from vhpc.spec.grow import check_add_count

POLL_INTERVAL = 2.0  # seconds between looks at the draining nodes' Slurm state


def _span(names: list[str]) -> str:
    return ", ".join(names) if len(names) <= 4 else f"{names[0]}..{names[-1]}"


@click.group(name="node")
def node_group() -> None:
    """Add, list, remove, stop and start compute nodes of a running cluster."""


@node_group.command(name="add")
@click.argument("names", nargs=-1)
@click.option("--count", type=int, default=None,
              help="Add N nodes named after the last computeN.")
@click.option("--memory", default=None,
              help="Memory limit per node (default: the cluster's, from 'up --memory').")
@click.option("--cpus", type=int, default=None, help="CPUs per node (round-robin; default 1).")
@click.option("--cpuset", default=None, help="Explicit CPU list for every new node, e.g. 1.")
@click.option("--features", default="", help="Slurm features, e.g. a,b.")
@click.option("--gpus", default="", metavar="N|TYPE:N",
              help="Fake GPUs per new node, e.g. 2 or a100:2 (Slurm GRES gpu).")
@click.option("--group", default="", metavar="GROUP",
              help="A node of the cluster file's group GROUP (named GROUPn): its memory, "
                   "CPUs, GPUs, features, rack and partitions, unless given here.")
@click.option("--no-wait", is_flag=True, help="Return before the nodes are idle in Slurm.")
@click.option("--json", "as_json", is_flag=True, help="Print the new records as JSON.")
@click.pass_obj
def add(obj: dict[str, str], names: tuple[str, ...], count: int | None, memory: str | None,
        cpus: int | None, cpuset: str | None, features: str, no_wait: bool,
        as_json: bool, gpus: str, group: str) -> None:
    """Add compute nodes: vhpc node add compute4 compute5 | vhpc node add --count 12"""
    if count is not None:
        check_add_count(count)  # --count 0 is refused here; 0 below means "not given"
    count = count or 0
    client = control.ensure_manager(obj["cluster"])
    start = time.monotonic()
    what = _span(list(names)) if names else f"{count} node{'s' * (count != 1)}"
    with waiting(f"adding {what}" + ("" if no_wait else ", until idle in Slurm")):
        added = plain(client.add_nodes(list(names), count, memory, cpus, cpuset,
                                       [f for f in features.split(",") if f],
                                       wait=not no_wait, gpus=gpus, group=group))
    if as_json:
        print_json(added)
        return
    new = [a["name"] for a in added]
    state = "started" if no_wait else "idle"
    say(f"added {len(new)} node{'s' * (len(new) != 1)} ({_span(new)}), {state} "
        f"in {time.monotonic() - start:.2f}s")


@node_group.command(name="ls")
@click.option("--json", "as_json", is_flag=True, help="JSON for scripts.")
@click.pass_obj
def ls(obj: dict[str, str], as_json: bool) -> None:
    """Nodes with their registry state (up/stopped/lost/draining) and Slurm state."""
    nodes = plain(control.ensure_manager(obj["cluster"]).nodes())
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
@click.argument("names", nargs=-1, required=True, shell_complete=node_names)
@click.option("--drain", is_flag=True, help="Wait for the nodes' running jobs to end first.")
@click.pass_obj
def rm(obj: dict[str, str], names: tuple[str, ...], drain: bool) -> None:
    """Remove compute nodes (from Slurm, DNS, the registry and the host)."""
    client = control.ensure_manager(obj["cluster"])
    span = _span(list(names))
    label = f"draining {span} (waiting for its jobs to end)" if drain else f"removing {span}"
    with waiting(label) as bar, _show_slurm_states(bar, obj["cluster"], names, label, drain):
        leftovers = plain(client.remove_nodes(list(names), drain))
    if leftovers:
        raise click.ClickException("could not remove: " + "; ".join(leftovers))
    say(f"removed {span}")


@node_group.command(name="stop")
@click.argument("names", nargs=-1, required=True, shell_complete=node_names)
@click.pass_obj
def stop(obj: dict[str, str], names: tuple[str, ...]) -> None:
    """Stop nodes: every process ends, DOWN in Slurm ("stopped by vhpc"), out of DNS."""
    check_distinct(names)
    client = control.ensure_manager(obj["cluster"])
    with waiting(f"stopping {_span(list(names))}") as bar:
        for name in names:
            bar.update(bar.task_ids[0], description=f"stopping {name}")
            client.stop_node(name)
    say(f"stopped {_span(list(names))}")


@node_group.command(name="start")
@click.argument("names", nargs=-1, required=True, shell_complete=node_names)
@click.pass_obj
def start(obj: dict[str, str], names: tuple[str, ...]) -> None:
    """Start stopped nodes again; they return to idle."""
    check_distinct(names)
    client = control.ensure_manager(obj["cluster"])
    with waiting(f"starting {_span(list(names))}") as bar:
        for name in names:
            bar.update(bar.task_ids[0], description=f"starting {name}, until idle in Slurm")
            client.start_node(name)
    say(f"started {_span(list(names))}")


@contextmanager
def _show_slurm_states(bar: Progress, cluster: str, names: tuple[str, ...], label: str,
                       enabled: bool) -> Iterator[None]:
    """While a drain waits, show the nodes' Slurm states in the spinner (terminals only)."""
    if not enabled or bar.disable:
        yield
        return
    done = threading.Event()

    def poll() -> None:
        client = ManagerClient(cluster, timeout=POLL_INTERVAL * 2)
        try:
            while not done.wait(POLL_INTERVAL):
                try:
                    nodes = plain(client.nodes())
                except Exception:  # the spinner is a courtesy: never fail the removal
                    continue
                states = [f"{n['name']} {n['slurm_state']}" for n in nodes
                          if n["name"] in names]
                bar.update(bar.task_ids[0], description=f"{label}: {', '.join(states)}")
        finally:
            client.close()

    thread = threading.Thread(target=poll, name="drain-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(timeout=POLL_INTERVAL * 3)
