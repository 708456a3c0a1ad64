"""`vhpc chaos run FILE`: replay a scenario of load and timed faults (vhpc/chaos_runner.py)."""

from __future__ import annotations

import signal
import sys

import click
from rich.table import Table

from vhpc.cli.load_cmds import print_report
from vhpc.cli.output import out_console, print_json, say


@click.group(name="chaos")
def chaos_group() -> None:
    """Scenarios of load and timed faults (TOML, examples/chaos/)."""


@chaos_group.command(name="run")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--timeout", type=float, default=600.0, show_default=True,
              help="Seconds a load waits for its jobs after its last submission.")
@click.option("--json", "as_json", is_flag=True, help="The report as JSON for scripts "
                                                      "(the timeline goes to stderr).")
@click.pass_obj
def chaos_run(obj: dict[str, str], file: str, timeout: float, as_json: bool) -> None:
    """Run FILE: its [[load]]s and [[fault]]s on time; print a timeline, then the load
    report and the faults applied and cleared. Faults are cleared at the end and on Ctrl-C."""
    from vhpc.chaos_runner import run_scenario

    def terminate(signum: int, frame: object) -> None:  # `kill`: clean up as on Ctrl-C
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    def timeline(line: str) -> None:
        if as_json:
            say(line)
        else:
            click.echo(line)

    report = run_scenario(obj["cluster"], file, timeline, timeout)
    if as_json:
        print_json(report)
    else:
        for index, load in enumerate(report.loads, 1):
            out_console.print(f"\n[bold]load #{index}[/]")
            print_report(load)
        table = Table(box=None, header_style="bold", title_justify="left")
        for col in ("#", "FAULT", "IDS", "APPLIED", "CLEARED", "NOTE"):
            table.add_column(col)
        for fault in report.faults:
            table.add_row(str(fault.step), fault.description or fault.label,
                          ",".join(fault.ids) or "-",
                          "-" if fault.applied_at is None else f"{fault.applied_at:.1f}s",
                          "-" if fault.cleared_at is None else f"{fault.cleared_at:.1f}s",
                          fault.error)
        if report.faults:
            out_console.print("\n[bold]faults[/]")
            out_console.print(table)
    if report.left_active:
        say(f"faults still active: {', '.join(report.left_active)} (clear them with "
            f"'vhpc -c {obj['cluster']} fault clear')")
        sys.exit(1)
    if report.interrupted:
        sys.exit(130)
