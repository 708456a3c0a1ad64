"""What a daemon is to the supervisor: a name, a node, an argv and a log file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

#: session_nice of munged, dnsmasq and slurmctld: every step's launch asks all three
#: (a credential, node names, the step itself); and of mariadbd and slurmdbd: with
#: accounting, the boot waits for one after the other before slurmctld can start, while
#: the compute nodes are made beside them (a 16-node boot 11% faster weighted). -20
#: weighs as ~87 default sessions
RPC_PATH_NICE = -20


@dataclass(frozen=True)
class DaemonSpec:
    """A long-running program in a node, built without running it."""

    name: str
    node: str
    argv: tuple[str, ...]
    log_file: Path
    env: dict[str, str] = field(default_factory=dict)
    #: the nice of its session's CPU share (autogroup), for a daemon every job step
    #: depends on: on a host saturated by a step across 1024 nodes (~2000 runnable
    #: sessions) it must still answer (runtime/priority.py). None: the default share.
    session_nice: int | None = None

    @property
    def key(self) -> str:
        """Unique id of this daemon in the cluster: '<daemon>@<node>'."""
        return f"{self.name}@{self.node}"
