"""Installed programs' versions, remembered per program file, so that a boot does not ask
again: `mariadbd --version` (~30 ms), `dpkg-query` for slurmdbd (~10 ms) and `slurmd -V`
(~3 ms) sat on the path of every `vhpc up`, in the manager and the CLI.

An answer is kept in STATE_ROOT/.program-versions.json under its question (`mariadbd
--version`) with the identity of the program's file: device, inode, size, modification
and change times. A package upgrade writes a new file (a new inode and change time), so
the next boot asks the program again. An unreadable cache is asked around; one that
cannot be written (not root) costs the question every time, nothing else.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from pathlib import Path

from vhpc.atomic import write_atomic
from vhpc.spec.paths import state_root

CACHE_NAME = ".program-versions.json"


def cache_file() -> Path:
    """Where the answers are kept."""
    return state_root() / CACHE_NAME


def file_identity(path: str) -> list[int] | None:
    """What changes when `path` is replaced or rewritten; None if it cannot be read."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def remembered(question: str, program: str, ask: Callable[[], str]) -> str:
    """`ask()`'s answer to `question` about the program file `program`, from the cache
    while that file is the same one. An empty answer (the program could not tell) is not
    kept; an exception from `ask` goes to the caller."""
    identity = file_identity(program)
    if identity is None:
        return ask()
    answers = _read()
    kept = answers.get(question)
    if isinstance(kept, dict) and kept.get("file") == [program, *identity]:
        version = kept.get("version")
        if isinstance(version, str) and version:
            return version
    version = ask()
    if version:
        answers[question] = {"file": [program, *identity], "version": version}
        with contextlib.suppress(OSError):  # not root, or no state directory yet
            write_atomic(cache_file(), json.dumps(answers, indent=1) + "\n")
    return version


def _read() -> dict[str, object]:
    try:
        data = json.loads(cache_file().read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
