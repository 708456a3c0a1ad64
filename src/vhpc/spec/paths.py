"""Where a cluster keeps its state on the host: /var/lib/vhpc/<cluster> (never /tmp)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_ROOT = Path("/var/lib/vhpc")


def state_root() -> Path:
    """The directory holding every cluster's state (VHPC_STATE_ROOT overrides)."""
    return Path(os.environ.get("VHPC_STATE_ROOT", str(DEFAULT_ROOT)))


@dataclass(frozen=True)
class ClusterPaths:
    """All paths of one cluster, derived from its state directory."""

    root: Path

    @classmethod
    def of(cls, cluster: str) -> ClusterPaths:
        """Paths of the named cluster under the state root."""
        return cls(state_root() / cluster)

    @property
    def spec(self) -> Path:
        return self.root / "spec.json"

    @property
    def ledger(self) -> Path:
        return self.root / "ledger.jsonl"

    @property
    def etc(self) -> Path:
        return self.root / "etc"

    @property
    def slurm_etc(self) -> Path:
        return self.etc / "slurm"

    @property
    def slurm_conf(self) -> Path:
        return self.slurm_etc / "slurm.conf"

    @property
    def munge_key(self) -> Path:
        return self.etc / "munge.key"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def munge_dir(self) -> Path:
        return self.run / "munge"

    @property
    def munge_socket(self) -> Path:
        return self.munge_dir / "munge.socket.2"

    @property
    def manager_socket(self) -> Path:
        return self.run / "manager.sock"

    @property
    def manager_pid(self) -> Path:
        return self.run / "manager.pid"

    @property
    def log(self) -> Path:
        return self.root / "log"

    @property
    def manager_log(self) -> Path:
        return self.log / "manager.log"

    @property
    def slurm_state(self) -> Path:
        return self.root / "slurm" / "state"

    @property
    def slurm_spool(self) -> Path:
        return self.root / "slurm" / "spool"

    @property
    def ns_dir(self) -> Path:
        return self.root / "ns"

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def data(self) -> Path:
        return self.root / "data"

    def node_dir(self, node: str) -> Path:
        """Private directories of one node (its /tmp, /var/tmp, /run)."""
        return self.root / "nodes" / node

    def daemon_log(self, daemon: str, node: str) -> Path:
        """Log file of one daemon on one node."""
        return self.log / f"{daemon}.{node}.log"
