"""Human output of the CLI (rich tables); JSON output is the API's document as is (output.py)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from vhpc.spec.sizes import MIB


def mib(nbytes: int) -> str:
    """Bytes as MiB with one decimal."""
    return f"{nbytes / MIB:.1f}M"


def status_table(status: dict[str, Any], console: Console) -> None:
    """The nodes of a cluster as a table, with a one-line header."""
    nodes = status["nodes"]
    computes = [n for n in nodes if n["role"] == "compute"]
    idle = sum(1 for n in computes if n["slurm_state"].startswith("idle"))
    console.print(
        f"cluster [bold]{status['cluster']}[/] {phase_text(status)}: {len(computes)} compute nodes "
        f"({idle} idle),{slurm_text(status)} subnet {status['subnet']}, "
        f"cgroup v{status['cgroup_version']}, "
        f"dashboard {status['dashboard']}"
    )
    table = Table(box=None, header_style="bold")
    with_gres = any(n.get("gres") for n in nodes)  # a GRES column only when a node has GPUs
    site = site_columns(nodes)
    for col in ("NODE", "ROLE", *site, "IP", "CPUS", "MEM USED/LIMIT", "OOM", "SLURM",
                *(("GRES",) if with_gres else ()), "PIDS", "DAEMONS"):
        table.add_column(col)
    for n in nodes:
        daemons = " ".join(
            f"{d['name']}:{d['state'].lower()}" + (f"({d['restarts']}r)" if d["restarts"] else "")
            for d in n["services"]
        )
        oom = str(n["oom_kills"]) if n["oom_kills"] == 0 else f"[red]{n['oom_kills']}[/]"
        table.add_row(n["name"], n["role"], *site_cells(n, site), n["ip"], n["cpuset"],
                      f"{mib(n['memory_usage'])}/{mib(n['memory_limit'])}", oom,
                      n["slurm_state"], *((n.get("gres") or "-",) if with_gres else ()),
                      str(len(n["pids"])), daemons)
    console.print(table)
    if status.get("jobs"):
        jobs = Table(box=None, header_style="bold")
        for col in ("JOBID", "NAME", "USER", "STATE", "TIME", "NODES"):
            jobs.add_column(col)
        for j in status["jobs"]:
            jobs.add_row(j.get("id", ""), j.get("name", ""), j.get("user", ""),
                         j.get("state", ""), j.get("time", ""), j.get("nodes", ""))
        console.print(jobs)


def slurm_text(status: dict[str, Any]) -> str:
    """' Slurm 24.11.5 (image debian13),' for the header ('' from an older manager)."""
    version = status.get("slurm_version") or ""
    image = status.get("image") or "host"
    if not version:
        return ""
    return f" Slurm {version}" + (f" (image {image})," if image != "host" else ",")


def site_columns(nodes: list[dict[str, Any]]) -> tuple[str, ...]:
    """GROUP, PARTITIONS and FEATURES columns, each only when some node has one."""
    wanted = (("GROUP", "group"), ("PARTITIONS", "partitions"), ("FEATURES", "features"))
    return tuple(col for col, key in wanted if any(n.get(key) for n in nodes))


def site_cells(node: dict[str, Any], columns: tuple[str, ...]) -> list[str]:
    """A node's cells of the site columns ('-' for none)."""
    cells = {"GROUP": node.get("group") or "-",
             "PARTITIONS": ",".join(node.get("partitions") or []) or "-",
             "FEATURES": ",".join(node.get("features") or []) or "-"}
    return [cells[col] for col in columns]


def phase_text(status: dict[str, Any]) -> str:
    """The phase, with the boot step while booting ("booting (creating nodes 3/16)")."""
    phase = str(status.get("phase", ""))
    progress = status.get("progress") or {}
    if phase != "booting" or not progress.get("message"):
        return phase  # once ready, a leftover boot step would only mislead
    step = str(progress["message"])
    if progress.get("total"):
        step += f" {progress.get('done', 0)}/{progress['total']}"
    return f"{phase} ({step})"
