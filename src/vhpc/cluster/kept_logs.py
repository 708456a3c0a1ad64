"""Logs kept after a cluster is gone: those of a failed boot, or of `vhpc down --keep-logs`.

Teardown removes the cluster's state directory, logs included. Before it does, the log
directory (every daemon's log, the consoles) moves to `<state root>/.failed/<cluster>-<UTC
time>/` with the spec and, for a failed boot, `error.txt` (the error and its traceback).
The directory is root's alone (0700, like the state it came from). `vhpc clean` removes
a cluster's kept logs (`--all`: everyone's) and names what it removed.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
from pathlib import Path

from vhpc.atomic import write_atomic
from vhpc.spec.load import CLUSTER_NAME_PATTERN
from vhpc.spec.paths import ClusterPaths, state_root

log = logging.getLogger(__name__)

#: Under the state root; a name no cluster can take (cluster names start with a letter).
KEPT_DIR = ".failed"
_STAMP = "%Y%m%dT%H%M%SZ"
_STAMP_RE = r"\d{8}T\d{6}Z(?:-\d+)?"


def kept_root(root: Path | None = None) -> Path:
    """The directory holding every kept log directory (under the state root)."""
    return (root or state_root()) / KEPT_DIR


def keep(paths: ClusterPaths, cluster: str, note: str = "") -> Path | None:
    """Move the cluster's logs (and a copy of its spec) to a new kept directory.

    Returns that directory, or None if there was no log directory or it could not be kept
    (a warning is logged: teardown goes on either way).
    """
    if not paths.log.is_dir():
        return None
    try:
        dest = _new_dir(kept_root(paths.root.parent), cluster)
        for entry in paths.log.iterdir():
            shutil.move(str(entry), dest / entry.name)  # a rename: same file system
        if paths.spec.exists():
            shutil.copy2(paths.spec, dest / paths.spec.name)
        if note:
            write_atomic(dest / "error.txt", note.rstrip() + "\n", 0o600)
    except OSError as err:
        log.warning("could not keep the logs of cluster %s: %s", cluster, err)
        return None
    return dest


def _new_dir(root: Path, cluster: str) -> Path:
    """A fresh `<cluster>-<UTC time>[-k]` directory in `root`, both mode 0700."""
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o700)
    base = f"{cluster}-{time.strftime(_STAMP, time.gmtime())}"
    for k in range(1, 1000):
        dest = root / (base if k == 1 else f"{base}-{k}")
        try:
            dest.mkdir(mode=0o700)
            return dest
        except FileExistsError:
            continue
    raise FileExistsError(f"too many kept log directories named {base}")


def kept_of(cluster: str | None = None, state: Path | None = None) -> list[Path]:
    """Kept log directories of one cluster (None: of every cluster), by name."""
    root = kept_root(state)
    if not root.is_dir():
        return []
    name = re.escape(cluster) if cluster is not None else CLUSTER_NAME_PATTERN
    pattern = re.compile(rf"{name}-{_STAMP_RE}")
    return sorted(p for p in root.iterdir() if p.is_dir() and pattern.fullmatch(p.name))


def remove_kept(cluster: str | None = None, state: Path | None = None) -> list[Path]:
    """Remove the kept log directories of one cluster (None: all); the ones removed."""
    removed = []
    for path in kept_of(cluster, state):
        shutil.rmtree(path, ignore_errors=True)
        if not path.exists():
            removed.append(path)
    root = kept_root(state)
    if root.is_dir() and not any(root.iterdir()):
        root.rmdir()
    return removed
