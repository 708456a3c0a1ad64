"""`vhpc jobs`: the cluster's jobs, live ones from slurmctld and finished ones from sacct."""

from __future__ import annotations

import time
from typing import Any

import click
from rich.table import Table

from vhpc import control
from vhpc.cli.output import out_console, plain, print_json, say

COLUMNS = ("JOBID", "NAME", "USER", "ACCOUNT", "PARTITION", "STATE", "ELAPSED", "EXIT",
           "MAXRSS", "END", "NODES")


def elapsed_text(seconds: int) -> str:
    """Seconds as Slurm prints them: [D-]HH:MM:SS."""
    days, rest = divmod(max(0, int(seconds)), 86400)
    hours, rest = divmod(rest, 3600)
    text = f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"
    return f"{days}-{text}" if days else text


def rss_text(nbytes: int | None) -> str:
    """Peak memory in MiB ('-' when accounting has none)."""
    return "-" if nbytes is None else f"{nbytes / 2**20:.1f}M"


def job_row(job: dict[str, Any]) -> tuple[str, ...]:
    """One table row of a Job document."""
    end = job.get("end")
    return (str(job["id"]), job.get("name", ""), job.get("user", ""),
            job.get("account", "") or "-", job.get("partition", ""), job.get("state", ""),
            elapsed_text(job.get("elapsed", 0)), job.get("exit_code", "") or "-",
            rss_text(job.get("max_rss")),
            time.strftime("%H:%M:%S", time.localtime(end)) if end else "-",
            job.get("nodes", "") or "-")


@click.command(name="jobs")
@click.option("-a", "--all", "finished", is_flag=True,
              help="Also finished jobs (every one since --since with accounting).")
@click.option("--since", type=float, default=0.0, help="Finished since this Unix time.")
@click.option("--limit", type=click.IntRange(1, 10000), default=500, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="JSON for scripts.")
@click.pass_obj
def jobs_cmd(obj: dict[str, str], finished: bool, since: float, limit: int,
             as_json: bool) -> None:
    """Jobs: user, account, state, elapsed, exit code, MaxRSS (newest first)."""
    doc = plain(control.ensure_manager(obj["cluster"]).jobs(finished, since, limit))
    if as_json:
        print_json(doc)
        return
    if not doc["jobs"]:
        say("no jobs" + ("" if finished else " pending or running (--all: finished too)"))
        return
    table = Table(box=None, header_style="bold")
    for col in COLUMNS:
        table.add_column(col)
    for job in doc["jobs"]:
        table.add_row(*job_row(job))
    out_console.print(table)
    if finished and not doc["accounting"]:
        say("no accounting on this cluster: finished jobs are those slurmctld still holds "
            "(MinJobAge, 5 min)")
