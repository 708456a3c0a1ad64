"""`vhpc ls`: every cluster with state on this host, as a table or JSON.

Read from each cluster's state directory (spec, ledger, munge key) and a short health
probe of its manager. `ls` never starts a manager: a cluster whose manager does not
answer shows as "manager down" (any other command re-adopts it).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import click
import httpx
from rich.table import Table

from vhpc import control
from vhpc.cli.output import out_console, plain, print_json, say
from vhpc.client import ManagerClient
from vhpc.errors import VhpcError
from vhpc.spec.model import ClusterSpec
from vhpc.spec.paths import ClusterPaths

PROBE_TIMEOUT = 1.0  # seconds; a manager that answers slower than this is shown as busy

# A probe answers the manager's health document plus "dashboard", or None if nobody answers.
Probe = Callable[[str], dict[str, Any] | None]


@dataclass(frozen=True)
class ClusterRow:
    """One line of `vhpc ls`."""

    name: str
    nodes: int | None  # compute nodes in the spec (None: no readable spec)
    state: str  # the manager's phase (ready, booting, stopping...), "manager down" or "down"
    age: float | None  # seconds since the cluster booted
    dashboard: str


def probe_manager(name: str) -> dict[str, Any] | None:
    """The manager's health and dashboard URL, or None if it does not answer in time."""
    client = ManagerClient(name, timeout=PROBE_TIMEOUT)
    try:
        health: dict[str, Any] = dict(plain(client.request("GET", "/health",
                                                           timeout=PROBE_TIMEOUT)))
        if not health.get("dashboard"):  # older managers: the status document has it
            status = plain(client.request("GET", "/status", params={"max_age": 3600},
                                           timeout=2 * PROBE_TIMEOUT))
            health["dashboard"] = status.get("dashboard", "")
        return health
    except (VhpcError, httpx.HTTPError, OSError, ValueError):
        return None
    finally:
        client.close()


def booted_at(paths: ClusterPaths) -> float | None:
    """When the cluster booted: its munge key is written once, at boot, and never again."""
    for path in (paths.munge_key, paths.ledger):
        try:
            return path.stat().st_mtime
        except OSError:
            continue
    return None


def _spec_of(paths: ClusterPaths) -> ClusterSpec | None:
    try:
        return ClusterSpec.from_dict(json.loads(paths.spec.read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def cluster_rows(probe: Probe | None = None, now: float | None = None) -> list[ClusterRow]:
    """Every cluster with state here, with its size, state, age and dashboard."""
    probe = probe or probe_manager
    now = time.time() if now is None else now
    rows = []
    for name in control.list_clusters():
        paths = ClusterPaths.of(name)
        spec = _spec_of(paths)
        up = control.is_up(name)
        health = probe(name) if up else None
        if not up:
            state = "down"
        elif health is None:
            state = "manager down"
        else:
            state = str(health.get("phase", "unknown"))
        started = booted_at(paths)
        rows.append(ClusterRow(
            name=name, nodes=len(spec.computes) if spec else None, state=state,
            age=round(now - started, 1) if started is not None else None,
            dashboard=str(health.get("dashboard", "")) if health else ""))
    return rows


def format_age(seconds: float | None) -> str:
    """42s, 5m, 3h, 2d."""
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(max(seconds, 0))}s"


def rows_table(rows: list[ClusterRow]) -> Table:
    """The clusters as a table: NAME NODES STATE AGE DASHBOARD."""
    table = Table(box=None, header_style="bold")
    for col in ("NAME", "NODES", "STATE", "AGE", "DASHBOARD"):
        table.add_column(col)
    for r in rows:
        table.add_row(r.name, "-" if r.nodes is None else str(r.nodes), r.state,
                      format_age(r.age), r.dashboard or "-")
    return table


@click.command(name="ls")
@click.option("--json", "as_json", is_flag=True, help="JSON for scripts ([] when none).")
def ls_cmd(as_json: bool) -> None:
    """Clusters on this host: name, compute nodes, state, age, dashboard."""
    rows = cluster_rows()
    if as_json:
        print_json([asdict(r) for r in rows])
        return
    if not rows:
        say("no clusters on this host ('vhpc up' boots one)")
        return
    out_console.print(rows_table(rows))
