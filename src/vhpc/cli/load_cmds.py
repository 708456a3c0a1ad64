"""`vhpc load`: drive the cluster with a reproducible job mix and report how it coped."""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
from rich.live import Live
from rich.table import Table
from rich.text import Text

from vhpc.cli.output import err_console, out_console, print_json, say
from vhpc.workloads.load import DISTRIBUTIONS, LoadOptions, LoadReport, PartitionReport


def load_options(seed: int, rate: float | None, count: int | None, duration: float | None,
                 mean_runtime: float, distribution: str, fail_rate: float, oom_rate: float,
                 max_size: int | None) -> LoadOptions:
    """The LoadOptions of the command line (checked when the runner plans the mix)."""
    return LoadOptions(seed=seed, rate=rate, count=count, duration=duration,
                       mean_runtime=mean_runtime, distribution=distribution,
                       fail_rate=fail_rate, oom_rate=oom_rate, max_size=max_size)


@contextmanager
def live_progress() -> Iterator[Any]:
    """A one-line live view on stderr when it is a terminal; yields the progress callback."""
    if not err_console.is_terminal:
        yield None
        return
    with Live(Text("planning"), console=err_console, transient=True,
              refresh_per_second=4) as live:
        yield lambda state: live.update(Text(state.line()))


def seconds_text(value: float | None) -> str:
    """A duration for the report ('-' for none)."""
    return "-" if value is None else f"{value:.2f}s"


def report_table(report: LoadReport) -> Table:
    """The per-partition table of a report, the whole run last."""
    table = Table(box=None, header_style="bold")
    for col in ("PARTITION", "SUBMITTED", "COMPLETED", "FAILED", "OTHER", "WAIT P50",
                "P90", "P99", "JOBS/S", "CPU-S", "UTIL"):
        table.add_column(col, justify="left" if col == "PARTITION" else "right")

    def row(name: str, part: PartitionReport) -> None:
        table.add_row(name, str(part.submitted), str(part.completed), str(part.failed),
                      str(part.other), seconds_text(part.wait_p50),
                      seconds_text(part.wait_p90), seconds_text(part.wait_p99),
                      f"{part.throughput:.2f}", f"{part.cpu_seconds:.1f}",
                      f"{part.utilisation * 100:.1f}%")

    for name, part in sorted(report.partitions.items()):
        row(name, part)
    row("(all)", report.total)
    return table


def print_report(report: LoadReport) -> None:
    """The human report on stdout: a summary line, the table, refusals."""
    total = report.total
    out_console.print(
        f"load seed {report.seed}: {report.requested} jobs planned, {total.submitted} "
        f"submitted, {total.completed} completed, {total.failed} failed"
        + (f", {report.refused} refused by sbatch" if report.refused else "")
        + f" in {report.seconds:.1f}s (submitted at {report.submit_rate:.1f} jobs/s)"
        + (" (interrupted)" if report.interrupted else ""))
    out_console.print(report_table(report))
    lag = report.submit_lag_p90
    if lag is not None and lag > 1.0:
        out_console.print(f"  the generator fell behind its schedule: submissions were "
                          f"{lag:.1f}s late (p90); ask a lower --rate")
    for reason in report.refusals:
        out_console.print(f"  refused: {reason}")


@click.command(name="load")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Random seed: the same seed gives the same job mix.")
@click.option("--rate", type=float, default=None, metavar="JOBS/S",
              help="Mean submissions per second (Poisson) [default: as fast as possible "
                   "with --count, 1 with --duration].")
@click.option("--count", type=int, default=None, help="Jobs to submit.")
@click.option("--duration", type=float, default=None, metavar="SECONDS",
              help="Submit for this long.")
@click.option("--mean-runtime", type=float, default=1.0, show_default=True,
              metavar="SECONDS", help="Mean job run time.")
@click.option("--distribution", type=click.Choice(DISTRIBUTIONS), default="exponential",
              show_default=True, help="Distribution of run times.")
@click.option("--fail-rate", type=float, default=0.0, show_default=True,
              help="Share of jobs that exit non-zero.")
@click.option("--oom-rate", type=float, default=0.0, show_default=True,
              help="Share of jobs that exceed their --mem (killed OUT_OF_MEMORY).")
@click.option("--max-size", type=int, default=None, metavar="NODES",
              help="Largest job in nodes [default: the partition's size].")
@click.option("--timeout", type=float, default=600.0, show_default=True,
              help="Seconds to wait for the jobs to end after the last submission.")
@click.option("--json", "as_json", is_flag=True, help="The report as JSON for scripts.")
@click.pass_obj
def load_cmd(obj: dict[str, str], seed: int, rate: float | None, count: int | None,
             duration: float | None, mean_runtime: float, distribution: str,
             fail_rate: float, oom_rate: float, max_size: int | None, timeout: float,
             as_json: bool) -> None:
    """Submit a reproducible job mix (users, accounts, partitions, QOS) and report
    wait times, throughput and utilisation per partition."""
    from vhpc.load_runner import LoadRunner

    def terminate(signum: int, frame: object) -> None:  # `kill`: cancel the jobs, report
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    options = load_options(seed, rate, count, duration, mean_runtime, distribution,
                           fail_rate, oom_rate, max_size)
    runner = LoadRunner(obj["cluster"], options, wait_timeout=timeout)
    say(f"load {runner.name}: {len(runner.jobs)} jobs over "
        f"{', '.join(p.name for p in runner.shape.partitions)} as "
        f"{', '.join(u for u, _ in runner.shape.users)} (seed {seed})")
    with live_progress() as progress:
        runner.progress = progress
        report = runner.run()
    if as_json:
        print_json(report)
    else:
        print_report(report)
    if report.interrupted:
        sys.exit(130 if runner.stop.is_set() else 1)
