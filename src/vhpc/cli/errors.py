"""Map exceptions to one line on stderr and an exit code (ClusterShell's CLI/Error idea).

User errors print `vhpc: <what is wrong> (<how to fix it>)` and exit 2 (an error of the
manager arrives as the same class, with its `fix`); other vhpc errors
exit 1; Ctrl-C exits 130; a closed pipe (`vhpc status | head`) exits quietly. `--debug`
(or VHPC_DEBUG=1) shows the traceback instead.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable

import click

from vhpc.errors import VhpcError


def one_line(err: VhpcError) -> str:
    """The message, and the fix when the message does not already say it."""
    message = str(err)
    fix = getattr(err, "fix", "")
    return f"{message} ({fix})" if fix and fix not in message else message


def run_cli(entry: Callable[[], object], debug: bool) -> int:
    """Run the click entry point and turn exceptions into exit codes."""
    try:
        entry()
    except SystemExit as exit_:
        return int(exit_.code or 0) if isinstance(exit_.code, int | None) else 1
    except KeyboardInterrupt:
        print("vhpc: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except VhpcError as err:
        if debug:
            traceback.print_exc()
        print(f"vhpc: {one_line(err)}", file=sys.stderr)
        return err.exit_code
    except click.exceptions.Abort:
        return 130
    except click.ClickException as err:
        err.show()
        return err.exit_code
    except Exception as err:  # a bug: say so in one line unless debugging
        if debug:
            raise
        print(f"vhpc: internal error: {type(err).__name__}: {err} (rerun with --debug "
              "for the trace)", file=sys.stderr)
        return 70
    return 0
