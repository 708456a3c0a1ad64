"""`vhpc fault partition|heal|loss|rate|delay|freeze|thaw|kill|ls|clear`: inject faults into
a running cluster and undo them (a thin client of the manager's /api/v1/faults).

NODES is a comma-separated list, each part a name or a Slurm-style range
(`compute[1-3,5]`); several arguments add up. Every fault is checked by the manager
(unknown or stopped node, a value out of range, no netem for delay: one line, exit 2).
"""

from __future__ import annotations

import re
import time
from typing import Any

import click
from rich.table import Table

from vhpc import control
from vhpc.cli.completion import node_names
from vhpc.cli.output import out_console, plain, print_json, say

RANGE_RE = re.compile(r"^([^\[\]]*)\[([0-9,\-]+)\]([^\[\]]*)$")
MAX_EXPANDED = 4096


def parse_nodes(args: tuple[str, ...] | list[str]) -> list[str]:
    """Node names from 'a,b' and 'compute[1-3,5]' arguments, in order, each once."""
    out: list[str] = []
    for arg in args:
        for part in _split_top(arg):
            for name in _expand(part):
                if name not in out:
                    out.append(name)
    if len(out) > MAX_EXPANDED:
        raise click.UsageError(f"{len(out)} nodes named: at most {MAX_EXPANDED} at once")
    return out


def _split_top(arg: str) -> list[str]:
    """Split at commas outside brackets."""
    parts, depth, cur = [], 0, ""
    for ch in arg:
        depth += {"[": 1, "]": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p.strip() for p in parts if p.strip()]


def _expand(part: str) -> list[str]:
    if "[" not in part and "]" not in part:
        return [part]
    m = RANGE_RE.match(part)
    if not m:
        raise click.UsageError(f"cannot read node range {part!r}: write e.g. compute[1-4,7]")
    head, body, tail = m.groups()
    names: list[str] = []
    for piece in body.split(","):
        lo, _, hi = piece.partition("-")
        if not lo.isdigit() or (hi and not hi.isdigit()) or (hi and int(hi) < int(lo)):
            raise click.UsageError(f"cannot read node range {part!r}: write e.g. "
                                   "compute[1-4,7]")
        width = len(lo) if lo.startswith("0") else 0
        if hi and int(hi) - int(lo) >= MAX_EXPANDED:
            raise click.UsageError(f"node range {part!r} is too long")
        names += [f"{head}{i:0{width}d}{tail}" for i in range(int(lo), int(hi or lo) + 1)]
    return names


def _client(obj: dict[str, str]) -> Any:
    return control.ensure_manager(obj["cluster"])


def _report(faults: list[Any]) -> None:
    for fault in plain(faults):
        click.echo(f"{fault['id']}\t{fault['description']}")


def _report_cleared(faults: list[Any], what: str) -> None:
    done = plain(faults)
    for fault in done:
        click.echo(f"{fault['id']}\tcleared: {fault['description']}")
    if not done:
        say(f"no {what} to clear")


@click.group(name="fault")
def fault_group() -> None:
    """Inject faults (partition, loss, rate, delay, freeze, kill) and undo them."""


@fault_group.command(name="partition")
@click.argument("nodes", nargs=-1, required=True, shell_complete=node_names)
@click.option("--from", "peers", default="", metavar="NODES|controller",
              help="Cut only from these nodes (default: from everything, the host too; the "
                   "named nodes still reach each other).")
@click.pass_obj
def partition(obj: dict[str, str], nodes: tuple[str, ...], peers: str) -> None:
    """Cut nodes off, both directions: Slurm marks them NOT_RESPONDING after SlurmdTimeout."""
    _report(_client(obj).add_fault("partition", parse_nodes(nodes),
                                   peers=parse_nodes([peers]) if peers else []))


@fault_group.command(name="heal")
@click.argument("nodes", nargs=-1, shell_complete=node_names)
@click.pass_obj
def heal(obj: dict[str, str], nodes: tuple[str, ...]) -> None:
    """Undo partitions (of these nodes, or every one); nothing is restarted. Returns once
    slurmctld has heard from the healed nodes again."""
    _report_cleared(_client(obj).clear_faults(kind="partition", nodes=parse_nodes(nodes)),
                    "partition")


@fault_group.command(name="loss")
@click.argument("nodes", shell_complete=node_names)
@click.argument("percent", type=float)
@click.pass_obj
def loss(obj: dict[str, str], nodes: str, percent: float) -> None:
    """Drop PERCENT % of the packets to and from each node (nftables numgen)."""
    _report(_client(obj).add_fault("loss", parse_nodes([nodes]), percent=percent))


@fault_group.command(name="rate")
@click.argument("nodes", shell_complete=node_names)
@click.argument("rate")
@click.pass_obj
def rate(obj: dict[str, str], nodes: str, rate: str) -> None:
    """Limit each node's link to RATE each way, e.g. 10mbit (tbf)."""
    _report(_client(obj).add_fault("rate", parse_nodes([nodes]), rate=rate))


@fault_group.command(name="delay")
@click.argument("nodes", shell_complete=node_names)
@click.argument("ms", type=int)
@click.pass_obj
def delay(obj: dict[str, str], nodes: str, ms: int) -> None:
    """Delay each node's packets by MS milliseconds (needs the kernel's netem)."""
    _report(_client(obj).add_fault("delay", parse_nodes([nodes]), delay_ms=ms))


@fault_group.command(name="freeze")
@click.argument("nodes", nargs=-1, required=True, shell_complete=node_names)
@click.pass_obj
def freeze(obj: dict[str, str], nodes: tuple[str, ...]) -> None:
    """Freeze nodes (cgroup freezer): hung, not dead; jobs resume after thaw."""
    _report(_client(obj).add_fault("freeze", parse_nodes(nodes)))


@fault_group.command(name="thaw")
@click.argument("nodes", nargs=-1, shell_complete=node_names)
@click.pass_obj
def thaw(obj: dict[str, str], nodes: tuple[str, ...]) -> None:
    """Thaw frozen nodes (these, or every one)."""
    _report_cleared(_client(obj).clear_faults(kind="freeze", nodes=parse_nodes(nodes)),
                    "frozen node")


@fault_group.command(name="kill")
@click.argument("daemon", metavar="DAEMON[@NODE]")
@click.pass_obj
def kill(obj: dict[str, str], daemon: str) -> None:
    """SIGKILL one supervised daemon (e.g. slurmctld@slurm, slurmd@compute3, munged);
    supervision restarts it."""
    _report(_client(obj).add_fault("kill", daemon=daemon))


@fault_group.command(name="ls")
@click.option("--json", "as_json", is_flag=True, help="JSON for scripts.")
@click.pass_obj
def ls(obj: dict[str, str], as_json: bool) -> None:
    """The active faults, oldest first."""
    faults = plain(_client(obj).list_faults())
    if as_json:
        print_json(faults)
        return
    if not faults:
        say("no active faults")
        return
    table = Table(box=None, header_style="bold")
    for col in ("ID", "KIND", "NODES", "SINCE", "WHAT"):
        table.add_column(col)
    now = time.time()
    for f in faults:
        table.add_row(f["id"], f["kind"], ",".join(f["nodes"]),
                      f"{now - f['since']:.0f}s ago", f["description"])
    out_console.print(table)


@fault_group.command(name="clear")
@click.argument("fault_id", required=False, metavar="[ID]")
@click.option("--all", "clear_all", is_flag=True, help="Clear every active fault.")
@click.pass_obj
def clear(obj: dict[str, str], fault_id: str | None, clear_all: bool) -> None:
    """Undo one fault (by ID, from 'vhpc fault ls') or every one (--all)."""
    if bool(fault_id) == clear_all:
        raise click.UsageError("give a fault ID or --all (see 'vhpc fault ls')")
    _report_cleared(_client(obj).clear_faults(fault_id=fault_id), "fault")
