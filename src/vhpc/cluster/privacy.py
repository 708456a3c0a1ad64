"""Who may read a cluster's state directory on the host (docs/security.md).

The whole tree is root's and opens only to the cluster's own group: the cluster user's
jobs reach their home, slurm.conf and the munge socket through it (their host paths are
in passwd and slurm.conf), host users and other clusters' users reach nothing. What holds
daemon logs, namespace pins, the metrics and log stores, Slurm's state and other nodes'
/tmp is root's alone; the user's home is the user's alone.
"""

from __future__ import annotations

import os
from pathlib import Path

from vhpc.spec.paths import ClusterPaths

OBSERVE_DIR = "observe"
PRIVATE_FILE_MODE = 0o600  # spec.json, ledger.jsonl


def root_only_dirs(paths: ClusterPaths) -> list[Path]:
    """Directories only root may enter (0700)."""
    return [paths.log, paths.ns_dir, paths.root / "nodes", paths.slurm_state,
            paths.root / OBSERVE_DIR]


def group_dirs(paths: ClusterPaths) -> list[Path]:
    """Directories the cluster's group may enter, nobody else (0750, root:group)."""
    return [paths.root, paths.run, paths.munge_dir]


def secure_state_dir(paths: ClusterPaths, gid: int) -> None:
    """Set the modes and owners above (the directories are made if missing)."""
    for d in root_only_dirs(paths):
        d.mkdir(parents=True, exist_ok=True)
        os.chown(d, 0, 0)
        d.chmod(0o700)
    for d in group_dirs(paths):
        d.mkdir(parents=True, exist_ok=True)
        os.chown(d, 0, gid)
        d.chmod(0o750)
    if paths.ledger.exists():  # appended to for the cluster's life: the mode stays
        paths.ledger.chmod(PRIVATE_FILE_MODE)


def secure_home(home: Path, uid: int, gid: int) -> None:
    """The cluster user's home: theirs alone (0700)."""
    os.chown(home, uid, gid)
    home.chmod(0o700)
