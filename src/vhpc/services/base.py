"""What a daemon is to the supervisor: a name, a node, an argv and a log file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class DaemonSpec:
    """A long-running program in a node, built without running it."""

    name: str
    node: str
    argv: tuple[str, ...]
    log_file: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """Unique id of this daemon in the cluster: '<daemon>@<node>'."""
        return f"{self.name}@{self.node}"
