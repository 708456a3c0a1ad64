"""One exception hierarchy for vhpc; the CLI maps it to one line and an exit code.

A :class:`UserError` is something the user can fix (bad input, missing package, not root):
its message says what is wrong and how to fix it. Everything else is a :class:`VhpcError`
that indicates a failure of the machine or of a component; `--debug` shows its trace.
"""

from __future__ import annotations


class VhpcError(Exception):
    """Base of all vhpc errors."""

    exit_code = 1


class UserError(VhpcError):
    """Bad input or environment the user can fix; the message says how."""

    exit_code = 2


class SpecError(UserError):
    """An invalid cluster description (name, sizes, CPUs, subnet)."""


class NotRootError(UserError):
    """The operation needs root."""


class MissingDependencyError(UserError):
    """A Debian package or binary vhpc needs is not installed."""


class ClusterStateError(UserError):
    """The cluster is not in the state the command needs (already up, not up...)."""


class CommandError(VhpcError):
    """A command of the runtime funnel failed; carries argv, exit code and stderr."""

    def __init__(self, argv: list[str], returncode: int, stderr: str, stdout: str = "") -> None:
        self.argv = argv
        self.returncode = returncode
        self.stderr = stderr
        self.stdout = stdout
        tail = stderr.strip().splitlines()[-1] if stderr.strip() else "no stderr"
        super().__init__(f"command {argv[0]!r} failed (exit {returncode}): {tail}")


class BootError(VhpcError):
    """A cluster failed to come up; everything it made has been rolled back."""


class ManagerUnavailableError(ClusterStateError):
    """The cluster's manager does not answer on its socket."""
