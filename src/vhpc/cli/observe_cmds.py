"""`vhpc top`, `vhpc metrics`, `vhpc logs`: the observability data from the manager."""

from __future__ import annotations

import time
from typing import Any

import click
from click.shell_completion import CompletionItem
from rich.console import Group
from rich.table import Table

from vhpc import control
from vhpc.cli.completion import node_names
from vhpc.cli.output import out_console, plain, print_json
from vhpc.client import ManagerClient
from vhpc.errors import SpecError, UserError
from vhpc.spec.sizes import parse_duration

METRIC_CHOICES = ("memory", "cpu", "rx", "tx", "procs", "memory_limit", "oom_kills")
LEVEL_CHOICES = ("debug", "info", "notice", "warning", "error", "fatal")
# Services of the central log: the daemons vhpc runs in nodes (services/*, by DaemonSpec
# name), the batch output of jobs, and vhpc's own events.
LOG_SERVICES = ("dnsmasq", "etcd", "job", "mariadbd", "munged", "slurmctld", "slurmd",
                "slurmdbd", "slurmrestd", "vhpc")
TOTAL_SERIES = "_total"  # the metrics series summed over every node


def _duration(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except SpecError as err:
        raise click.BadParameter(str(err)) from err


def _bytes(n: Any) -> str:
    if n is None:
        return "-"
    v = float(n)
    for unit in ("B", "K", "M", "G", "T"):
        if abs(v) < 1024 or unit == "T":
            return f"{v:.0f}{unit}" if unit == "B" else f"{v:.1f}{unit}"
        v /= 1024
    return f"{v:.1f}T"


def top_frame(doc: dict[str, Any]) -> Group:
    """One frame of `vhpc top` from the status document (with sampler metrics merged)."""
    nodes = Table(title=f"cluster {doc.get('cluster')} ({doc.get('phase')})", expand=False)
    for col in ("node", "role", "slurm", "cpu%", "memory", "limit", "mem%", "rx/s", "tx/s",
                "procs", "oom"):
        nodes.add_column(col, justify="left" if col in ("node", "role", "slurm") else "right")
    for n in doc.get("nodes", []):
        usage, limit = n.get("memory_usage"), n.get("memory_limit")
        pct = f"{100 * usage / limit:.0f}" if usage is not None and limit else "-"
        cpu = n.get("cpu_percent")
        nodes.add_row(
            n["name"], n.get("role", ""), str(n.get("slurm_state", "")),
            "-" if cpu is None else f"{cpu:.1f}", _bytes(usage), _bytes(limit), pct,
            _bytes(n.get("rx_bps")), _bytes(n.get("tx_bps")), str(n.get("nprocs", "-")),
            str(n.get("oom_kills", 0)))
    jobs = Table(title="jobs", expand=False)
    for col in ("id", "name", "user", "state", "nodes", "time"):
        jobs.add_column(col)
    for j in doc.get("jobs", []):
        jobs.add_row(*(str(j.get(k, "")) for k in ("id", "name", "user", "state", "nodes",
                                                   "time")))
    return Group(nodes, jobs)


def _status_with_metrics(cluster: str) -> dict[str, Any]:
    client = control.ensure_manager(cluster)
    doc: dict[str, Any] = plain(client.status())
    latest: dict[str, dict[str, Any]] = {}
    for metric, key in (("cpu", "cpu_percent"), ("rx", "rx_bps"), ("tx", "tx_bps"),
                        ("procs", "nprocs")):
        try:
            series = plain(client.metrics(metric, since=60))
        except Exception:  # an older manager without /metrics: show what status has
            break
        for s in series:
            if s["points"]:
                latest.setdefault(s["node"], {})[key] = s["points"][-1][1]
    for n in doc.get("nodes", []):
        for key, value in latest.get(n["name"], {}).items():
            if n.get(key) is None:
                n[key] = value
    return doc


@click.command(name="top")
@click.option("--once", is_flag=True, help="Print one frame and exit.")
@click.option("--interval", type=click.FloatRange(0.5, 3600), default=2.0, show_default=True,
              help="Seconds between refreshes.")
@click.pass_obj
def top_cmd(obj: dict[str, str], once: bool, interval: float) -> None:
    """Live view: node state, CPU %, memory vs limit, network rates, jobs.

    Prints one frame and exits when stdout is not a terminal (`vhpc top > file`).
    """
    if once or not out_console.is_terminal:
        out_console.print(top_frame(_status_with_metrics(obj["cluster"])))
        return
    from rich.live import Live

    with Live(top_frame(_status_with_metrics(obj["cluster"])), console=out_console,
              screen=False, auto_refresh=False) as live:
        try:
            while True:
                time.sleep(interval)
                live.update(top_frame(_status_with_metrics(obj["cluster"])), refresh=True)
        except KeyboardInterrupt:
            pass


@click.command(name="metrics")
@click.option("--node", default=None, shell_complete=node_names,
              help="One node (default: all, plus _total).")
@click.option("--metric", type=click.Choice(METRIC_CHOICES), default="memory",
              show_default=True, help="memory bytes, cpu % of one core, rx/tx bytes/s.")
@click.option("--since", default="10m", show_default=True, callback=_duration,
              help="How far back: 30s, 10m, 1h...")
@click.option("--json", "as_json", is_flag=True, help="JSON for scripts.")
@click.pass_obj
def metrics_cmd(obj: dict[str, str], node: str | None, metric: str, since: float,
                as_json: bool) -> None:
    """Sampled per-node metrics (from the manager's sampler)."""
    client = control.ensure_manager(obj["cluster"])
    series = plain(client.metrics(metric, since, node))
    if node and not any(s["points"] for s in series):
        check_known("--node", node, [*_node_choices(obj["cluster"]), TOTAL_SERIES])
    if as_json:
        print_json({"series": series})
        return
    fmt = _bytes if metric in ("memory", "memory_limit", "rx", "tx") else \
        (lambda v: f"{v:.1f}")
    table = Table(title=f"{metric}, last {since:g}s")
    for col in ("node", "samples", "min", "avg", "max", "last"):
        table.add_column(col, justify="left" if col == "node" else "right")
    for s in series:
        values = [p[1] for p in s["points"]]
        if not values:
            table.add_row(s["node"], "0", "-", "-", "-", "-")
            continue
        table.add_row(s["node"], str(len(values)), fmt(min(values)),
                      fmt(sum(values) / len(values)), fmt(max(values)), fmt(values[-1]))
    out_console.print(table)


def _print_rows(rows: list[dict[str, Any]]) -> None:
    for r in rows:
        stamp = time.strftime("%H:%M:%S", time.localtime(r["ts"]))
        click.echo(f"{stamp} {r['level']:7} {r['node'] or '-':10} {r['service']:9} "
                   f"{r['message']}")


@click.command(name="logs")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines.")
@click.option("--node", default=None, shell_complete=node_names, help="Only this node.")
@click.option("--service", default=None, shell_complete=lambda c, p, i: [
    CompletionItem(s) for s in LOG_SERVICES if s.startswith(i)],
              help=f"Only this service: {', '.join(LOG_SERVICES)}.")
@click.option("--grep", "q", default=None, help="Only lines containing this text.")
@click.option("--level", type=click.Choice(LEVEL_CHOICES), default=None,
              help="This level or more severe.")
@click.option("--since", default=None, callback=_duration, help="How far back: 30s, 10m, 1h.")
@click.option("-n", "--limit", type=click.IntRange(1, 5000), default=200, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="JSON for scripts.")
@click.pass_obj
def logs_cmd(obj: dict[str, str], follow: bool, node: str | None, service: str | None,
             q: str | None, level: str | None, since: float | None, limit: int,
             as_json: bool) -> None:
    """The central log of every node's daemons and vhpc events (searchable)."""
    client = control.ensure_manager(obj["cluster"])
    rows = plain(client.logs(q, node, service, level, since, limit))
    if not rows:
        _check_filters(client, obj["cluster"], node, service)
    if as_json and not follow:
        print_json({"logs": rows})
        return
    rows.reverse()  # oldest first on a terminal
    if as_json:
        import json

        for r in rows:
            click.echo(json.dumps(r))
    else:
        _print_rows(rows)
    if not follow:
        return
    last = max((r["id"] for r in rows), default=0)
    try:
        while True:
            time.sleep(1.0)
            new = [r for r in plain(client.logs(q, node, service, level, 60, 5000))
                   if r["id"] > last]
            new.reverse()
            if new:
                last = max(r["id"] for r in new)
                if as_json:
                    import json

                    for r in new:
                        click.echo(json.dumps(r))
                else:
                    _print_rows(new)
    except KeyboardInterrupt:
        pass


def check_known(option: str, value: str, known: list[str]) -> None:
    """Refuse a filter value that matches nothing, with the values that would."""
    if value not in known:
        raise UserError(f"{option} {value!r} matches nothing: use one of "
                        f"{', '.join(known)}")


def _node_choices(cluster: str) -> list[str]:
    return [n.name for n in control.load_spec(cluster).nodes]


def _check_filters(client: ManagerClient, cluster: str, node: str | None,
                   service: str | None) -> None:
    """An empty answer with an unknown --node or --service is an error, not silence.

    Known: the spec's nodes and LOG_SERVICES. A value outside them that the store still
    has lines of (a node removed since) returns those lines and never gets here.
    """
    if node:
        check_known("--node", node, _node_choices(cluster))
    if service:
        check_known("--service", service, list(LOG_SERVICES))
