"""Where the CLI's output goes: data on stdout, progress and diagnostics on stderr.

Data is what a script parses or a user copies: tables, JSON, `env` lines, `ls`, the token,
`up`'s summary (dashboard and token). Everything about the run itself (progress bars,
spinners, "removed compute3", hints such as "no clusters") goes to stderr, so
`vhpc status --json > s.json` or `vhpc ls | wc -l` see only data. Spinners appear only when
stderr is a terminal.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast

import click

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress


class _LazyConsole:
    """A rich Console made on its first use: importing rich is ~30 ms that `vhpc up` would
    otherwise spend before the manager gets the cluster's spec (cli/entry.py)."""

    def __init__(self, stderr: bool) -> None:
        self._stderr = stderr
        self._console: Console | None = None

    def __getattr__(self, name: str) -> Any:
        if self._console is None:
            from rich.console import Console

            # Piped output (scripts, `| grep`) must not be cut to 80 columns. The console
            # resolves sys.stdout / sys.stderr when it prints, so redirections (and
            # click's test runner) apply.
            stream = sys.stderr if self._stderr else sys.stdout
            self._console = Console(stderr=self._stderr, highlight=False, emoji=False,
                                    width=None if stream.isatty() else 200)
        return getattr(self._console, name)


out_console = cast("Console", _LazyConsole(stderr=False))
err_console = cast("Console", _LazyConsole(stderr=True))


def plain(data: Any) -> Any:
    """JSON-ready data from what the client returns (pydantic models or plain values)."""
    dump = getattr(data, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    if isinstance(data, dict):
        return {k: plain(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [plain(v) for v in data]
    return data


def print_json(data: Any) -> None:
    """Machine-readable output for scripts, on stdout."""
    click.echo(json.dumps(plain(data), indent=2, sort_keys=True))


def say(message: str) -> None:
    """One diagnostic line on stderr (rich markup allowed)."""
    err_console.print(message)


@contextmanager
def waiting(description: str) -> Iterator[Progress]:
    """A spinner with the elapsed time on stderr while a long call runs (terminals only).

    Yields the Progress so the caller may change the text: `bar.update(task_id, ...)` with
    `bar.task_ids[0]`.
    """
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn  # ~30 ms

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=err_console, transient=True,
                  disable=not err_console.is_terminal) as bar:
        bar.add_task(description, total=None)
        yield bar
