"""The daemon state machine (supervisor/states.py idea): states and allowed transitions."""

from __future__ import annotations

from enum import StrEnum


class DaemonState(StrEnum):
    """Life cycle of one supervised daemon."""

    STOPPED = "STOPPED"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    BACKOFF = "BACKOFF"
    STOPPING = "STOPPING"
    FATAL = "FATAL"


ALLOWED: dict[DaemonState, frozenset[DaemonState]] = {
    DaemonState.STOPPED: frozenset({DaemonState.STARTING, DaemonState.RUNNING}),
    DaemonState.STARTING: frozenset({DaemonState.RUNNING, DaemonState.BACKOFF,
                                     DaemonState.STOPPING}),
    DaemonState.RUNNING: frozenset({DaemonState.BACKOFF, DaemonState.STOPPING}),
    DaemonState.BACKOFF: frozenset({DaemonState.STARTING, DaemonState.FATAL,
                                    DaemonState.STOPPED}),
    DaemonState.STOPPING: frozenset({DaemonState.STOPPED}),
    DaemonState.FATAL: frozenset({DaemonState.STARTING, DaemonState.STOPPED}),
}


class TransitionError(RuntimeError):
    """A state change the machine does not allow (a bug, not a user error)."""


def check_transition(old: DaemonState, new: DaemonState) -> None:
    """Raise TransitionError unless old -> new is allowed."""
    if new not in ALLOWED[old]:
        raise TransitionError(f"daemon cannot go from {old} to {new}")
