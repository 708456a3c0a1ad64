"""Find and remove the trash an interrupted `down` left (`vhpc clean`).

`down` renames a cluster's state directory aside to `<state root>/.trash-<cluster>-<pid>-
<ns>` and deletes it in a detached `rm` (runtime/trash.py). A host crash or a killed `rm`
leaves that directory behind for good. The name says whose it is: the cluster name, then
exactly two numbers, so `.trash-lab-1-2` is cluster `lab`'s and `.trash-lab-b-1-2`
cluster `lab-b`'s. Only directories named that way, directly under the state root, are
ever removed: nothing vhpc did not make.
"""

from __future__ import annotations

import re
from pathlib import Path

from vhpc.runtime.hostops import run_command
from vhpc.runtime.trash import TRASH_PREFIX
from vhpc.spec.load import CLUSTER_NAME_PATTERN

_SUFFIX_RE = r"-\d+-\d+"  # trash_name's pid and time


def owner_of(path: Path) -> str | None:
    """The cluster whose trash `path` is (None: not a trash directory's name)."""
    pattern = rf"{re.escape(TRASH_PREFIX)}({CLUSTER_NAME_PATTERN}){_SUFFIX_RE}"
    found = re.fullmatch(pattern, path.name)
    return found.group(1) if found else None


def trash_of(cluster: str | None, root: Path) -> list[Path]:
    """The trash directories under the state root `root` of one cluster (None: of all)."""
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir()
                  if p.is_dir() and not p.is_symlink()
                  and (owner := owner_of(p)) is not None and cluster in (None, owner))


def remove_trash(cluster: str | None, root: Path) -> list[Path]:
    """Delete the trash of one cluster (None: all) now; the directories removed.

    `rm --one-file-system`, like the background delete: a mount left inside (a crash
    before teardown released it) is never followed into.
    """
    removed = []
    for path in trash_of(cluster, root):
        run_command(["rm", "-rf", "--one-file-system", str(path)], check=False)
        if not path.exists():
            removed.append(path)
    return removed
