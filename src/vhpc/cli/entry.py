"""The `vhpc` script's entry point: for `vhpc up` the cluster's manager starts before the
CLI's modules load (server/launch.py); then the CLI (cli/main.py) runs the command."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

#: the CLI's global options that take a value (cli/main.py `cli`)
_VALUED = ("-c", "--cluster")


def up_cluster_name(args: Sequence[str], env: Mapping[str, str]) -> str | None:
    """The cluster `vhpc ARGS` boots if ARGS are an `up` command; None for anything else.

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
        else:
            return name if arg == "up" and name else None
    return None


def main() -> None:
    """Run the `vhpc` command."""
    name = up_cluster_name(sys.argv[1:], os.environ)
    if name is not None:
        from vhpc.server import launch

        launch.start_early(name)
    from vhpc.cli.main import main as cli_main

    cli_main()
