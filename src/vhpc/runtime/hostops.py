"""The one command funnel: every external command vhpc runs goes through `run_command`.

Like ReFrame's `osext.run_command`: it owns the process group, kills it on timeout and
raises a CommandError that carries argv, exit code and stderr.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
from dataclasses import dataclass

from vhpc.errors import CommandError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CommandResult:
    """What a finished command returned."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str


def run_command(
    argv: list[str],
    *,
    input: str | None = None,
    timeout: float = 60.0,
    check: bool = True,
    env: dict[str, str] | None = None,
) -> CommandResult:
    """Run argv to completion in its own process group; raise CommandError on failure."""
    log.debug("run: %s", " ".join(argv))
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
            env=env,
        )
    except FileNotFoundError:
        raise CommandError(argv, 127, f"{argv[0]}: command not found") from None
    try:
        stdout, stderr = proc.communicate(input=input, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid)
        stdout, stderr = proc.communicate()
        raise CommandError(argv, -signal.SIGKILL,
                           f"timed out after {timeout:.0f}s\n{stderr}") from None
    result = CommandResult(argv, proc.returncode, stdout, stderr)
    if check and proc.returncode != 0:
        raise CommandError(argv, proc.returncode, stderr, stdout)
    return result


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
