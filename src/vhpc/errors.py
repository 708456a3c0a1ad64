"""One exception hierarchy for vhpc; the CLI maps it to one line and an exit code.

A :class:`UserError` is something the user can fix (bad input, missing package, not root):
its message says what is wrong and how to fix it. Everything else is a :class:`VhpcError`
that indicates a failure of the machine or of a component; `--debug` shows its trace.

Errors cross the manager's HTTP API as ``{"error": {"type", "message", "fix"}}``
(:class:`vhpc.models.ErrorBody`); :func:`error_from_wire` turns such a body back into an
instance of the same class on the client side, looked up by name in :func:`registry`.
"""

from __future__ import annotations


class VhpcError(Exception):
    """Base of all vhpc errors; ``fix`` optionally says what to do about it."""

    exit_code = 1

    def __init__(self, message: str = "", *, fix: str = "") -> None:
        super().__init__(message)
        self.fix = fix

    @property
    def message(self) -> str:
        """The one-line message (without the fix)."""
        return str(self.args[0]) if self.args else ""


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


class InternalError(VhpcError):
    """An unexpected failure (a bug) inside the manager; its log has the traceback."""


class RequestError(UserError):
    """An HTTP request the manager refuses as malformed (validation, unknown route)."""


class EndpointNotFoundError(RequestError):
    """The manager serves no such endpoint (an older manager: restart it after upgrading)."""


class AuthError(UserError):
    """A TCP request without the right API token (the unix socket needs none)."""


class TokenRejectedError(AuthError):
    """A TCP request with a token that is not the cluster's."""


class RequestTooLargeError(RequestError):
    """A request body over the manager's size limit."""


class HostNotAllowedError(RequestError):
    """A TCP request whose Host header names none of the manager's addresses."""


class ServiceUnavailableError(ClusterStateError):
    """The part of the manager that answers this request is not running (yet, or any more)."""


class FaultError(UserError):
    """A fault request that cannot be carried out as asked (bad value, conflict)."""


class NoSuchFaultError(UserError):
    """No active fault has that id."""


class NetemMissingError(UserError):
    """The kernel has no netem qdisc (module sch_netem): no delay faults."""


def registry() -> dict[str, type[VhpcError]]:
    """Every VhpcError class defined so far (imported modules), by class name."""
    found: dict[str, type[VhpcError]] = {}
    todo: list[type[VhpcError]] = [VhpcError]
    while todo:
        cls = todo.pop()
        found.setdefault(cls.__name__, cls)
        todo.extend(cls.__subclasses__())
    return found


def error_from_wire(type_name: str, message: str, fix: str = "",
                    server_error: bool = False) -> VhpcError:
    """The exception an error body names, as an instance of the same class.

    An unknown type becomes an InternalError (server_error) or a UserError; a class with
    its own constructor (CommandError) is made without calling it, carrying the message.
    """
    cls = registry().get(type_name) or (InternalError if server_error else UserError)
    if cls.__init__ is VhpcError.__init__:
        return cls(message, fix=fix)
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    err.fix = fix
    return err
