"""The `vhpc` script's entry point, before the CLI's modules load (~0.1 s; seconds on a
host loaded by a 1024-node step): for `vhpc up` the cluster's manager starts first
(server/launch.py); `vhpc down` weights its session for the whole command, imports
included (runtime/priority.py). Then the CLI (cli/main.py) runs the command."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Mapping, Sequence

#: the CLI's global options that take a value (cli/main.py `cli`)
_VALUED = ("-c", "--cluster")


def command_of(args: Sequence[str], env: Mapping[str, str]) -> tuple[str, str] | None:
    """(command, cluster) of `vhpc ARGS`: the first word after the global options and the
    cluster they name; None without a command (or with a global option it does not know).

    Only a guess made before the CLI parses ARGS: `control.up` uses the manager started
    for it only if the CLI's own parse names the same cluster (server/launch.py)."""
    name = env.get("VHPC_CLUSTER", "vhpc")
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in _VALUED:
            if i + 1 >= len(args):
                return None
            name, i = args[i + 1], i + 2
        elif arg.startswith("--cluster="):
            name, i = arg.partition("=")[2], i + 1
        elif arg.startswith("-c") and not arg.startswith("--"):
            name, i = arg[2:], i + 1
        elif arg == "--debug":
            i += 1
        elif arg.startswith("-") or not name:
            return None
        else:
            return arg, name
    return None


def up_cluster_name(args: Sequence[str], env: Mapping[str, str]) -> str | None:
    """The cluster `vhpc ARGS` boots if ARGS are an `up` command; None for anything else."""
    found = command_of(args, env)
    return found[1] if found is not None and found[0] == "up" else None


def main() -> None:
    """Run the `vhpc` command."""
    found = command_of(sys.argv[1:], os.environ)
    share: contextlib.AbstractContextManager[object] = contextlib.nullcontext()
    code: object = 0
    if found is not None and found[0] == "up":
        from vhpc.server import launch

        launch.start_early(found[1])
    elif found is not None and found[0] == "down":
        from vhpc.runtime.priority import session_share

        share = session_share()
    with share:
        from vhpc.cli.main import main as cli_main

        try:
            cli_main()
        except SystemExit as done:
            code = done.code
    # The command is done: skip the interpreter's teardown (~35 ms of freeing modules at
    # the end of `vhpc up`). Nothing of the CLI's needs it: no atexit work, no threads,
    # and an unused early manager sees its input close with the process.
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe (`vhpc ls | head`)
            stream.flush()
    os._exit(code if isinstance(code, int) else 0 if code is None else 1)
