"""A temporary directory that behaves like a cgroup2 mount for runtime/cgroups.py.

The driver touches cgroupfs only through `cgroups._mkdir`, `_write` and `_rmdir`;
`FakeCgroup2.install` swaps those for versions that keep the kernel's rules, so a test
sees what the kernel would refuse:
- a new cgroup gets cgroup.controllers from its parent's subtree_control, and the
  interface files (memory.max, cpuset.cpus, pids.max, ...) of those controllers only;
- no file can be created, only the existing ones written;
- "no internal processes": a non-root cgroup with processes cannot enable controllers
  for its children, and a process cannot join a cgroup that has some enabled (EBUSY);
- a controller is enabled only where the parent offers it; a process is in one cgroup;
- rmdir refuses a cgroup with processes or children.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pytest

from vhpc.runtime import cgroups

KERNEL_ORDER = ("cpuset", "cpu", "io", "memory", "pids")
INTERFACE = {
    "cpuset": {"cpuset.cpus": "", "cpuset.mems": ""},
    "cpu": {"cpu.max": "max 100000", "cpu.weight": "100"},
    "io": {"io.max": ""},
    "memory": {"memory.max": "max", "memory.swap.max": "max", "memory.current": "0",
               "memory.events": "oom_kill 0"},
    "pids": {"pids.max": "max", "pids.current": "0"},
}
CORE = {"cgroup.controllers": "", "cgroup.subtree_control": "", "cgroup.procs": "",
        "cgroup.kill": "", "cgroup.freeze": "0", "cgroup.type": "domain"}


def _words(path: Path) -> list[str]:
    return path.read_text().split()


class FakeCgroup2:
    """cgroup2 rules over a directory tree rooted at `root`."""

    def __init__(self, root: Path, controllers: tuple[str, ...] = KERNEL_ORDER) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        for name, text in CORE.items():
            if name != "cgroup.type":  # the real root has none
                (root / name).write_text(text)
        (root / "cgroup.controllers").write_text(" ".join(controllers))

    def install(self, monkeypatch: pytest.MonkeyPatch) -> FakeCgroup2:
        """Route the driver's cgroupfs calls through this fake."""
        monkeypatch.setattr(cgroups, "_mkdir", self.mkdir)
        monkeypatch.setattr(cgroups, "_write", self.write)
        monkeypatch.setattr(cgroups, "_rmdir", self.rmdir)
        return self

    def mkdir(self, d: Path) -> bool:
        """A new cgroup: the controllers its parent enables for it, and their files."""
        try:
            d.mkdir()
        except FileExistsError:
            return False
        offered = _words(d.parent / "cgroup.subtree_control")
        for name, text in CORE.items():
            (d / name).write_text(text)
        (d / "cgroup.controllers").write_text(" ".join(offered))
        for controller in offered:
            for name, text in INTERFACE[controller].items():
                (d / name).write_text(text)
        return True

    def write(self, path: Path, value: str) -> None:
        """One write to a cgroupfs file, with the kernel's checks."""
        if not path.exists():
            raise FileNotFoundError(errno.ENOENT, "no such cgroup file", str(path))
        cg = path.parent
        if path.name == "cgroup.subtree_control":
            self._enable(cg, value.split())
        elif path.name == "cgroup.procs":
            self._join(cg, int(value))
        else:
            path.write_text(value)

    def rmdir(self, d: Path) -> None:
        """rmdir of a cgroup: only when it has no process and no child cgroup."""
        if not d.exists():
            return
        if _words(d / "cgroup.procs") or any(c.is_dir() for c in d.iterdir()):
            raise OSError(errno.EBUSY, "cgroup busy", str(d))
        shutil.rmtree(d)

    def procs(self, cg: Path) -> list[int]:
        """Processes in one cgroup."""
        return [int(p) for p in _words(cg / "cgroup.procs")]

    def _enable(self, cg: Path, tokens: list[str]) -> None:
        enabled = set(_words(cg / "cgroup.subtree_control"))
        offered = _words(cg / "cgroup.controllers")
        for token in tokens:
            name = token[1:]
            if token[0] == "+":
                if name not in offered:
                    raise OSError(errno.ENOENT, f"{name} not offered", str(cg))
                if cg != self.root and self.procs(cg):
                    raise OSError(errno.EBUSY, "no internal processes", str(cg))
                enabled.add(name)
            else:
                enabled.discard(name)
        ordered = [c for c in KERNEL_ORDER if c in enabled]
        (cg / "cgroup.subtree_control").write_text(" ".join(ordered))
        for child in (c for c in cg.iterdir() if c.is_dir()):
            (child / "cgroup.controllers").write_text(" ".join(ordered))
            for controller in ordered:
                for name, text in INTERFACE[controller].items():
                    if not (child / name).exists():
                        (child / name).write_text(text)

    def _join(self, cg: Path, pid: int) -> None:
        if cg != self.root and _words(cg / "cgroup.subtree_control"):
            raise OSError(errno.EBUSY, "cgroup distributes controllers", str(cg))
        for top, _, files in os.walk(self.root):
            if "cgroup.procs" in files:
                here = Path(top)
                kept = [p for p in self.procs(here) if p != pid]
                (here / "cgroup.procs").write_text("".join(f"{p}\n" for p in kept))
        (cg / "cgroup.procs").write_text(
            "".join(f"{p}\n" for p in [*self.procs(cg), pid]))
