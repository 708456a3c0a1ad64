"""A click group that imports a subcommand's module only when that command runs.

`vhpc up` then loads what booting needs and none of the other commands' modules (their
tables, the HTTP client, pydantic models): the CLI starts in about half the time.
`vhpc --help` and shell completion still list every command (they import them all).
"""

from __future__ import annotations

import importlib

import click


class LazyGroup(click.Group):
    """A group with subcommands named by `module:attribute`, imported on first use."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.lazy: dict[str, str] = {}

    def add_lazy(self, name: str, target: str) -> None:
        """Register the command `name`, found at `target` ("vhpc.cli.x_cmds:x_cmd")."""
        self.lazy[name] = target

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every command's name, the lazy ones included."""
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command, importing its module first if it is a lazy one."""
        if cmd_name not in self.commands and cmd_name in self.lazy:
            module, _, attribute = self.lazy[cmd_name].partition(":")
            command = getattr(importlib.import_module(module), attribute)
            if not isinstance(command, click.Command):
                raise TypeError(f"{self.lazy[cmd_name]} is not a click command")
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)
