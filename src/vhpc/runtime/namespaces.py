"""Persistent node namespaces (net, UTS, mount) kept as bind-mounted files in a private dir.

`unshare --net=F --uts=F --mount=F` makes the namespaces and pins them to files, with no
process needed to hold them. The setup script (a pure function, tested as text) names the
host, drops inherited namespace pins and bind-mounts the node's private and cluster files.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path

from vhpc.errors import CommandError
from vhpc.runtime.hostops import run_command

NS_KINDS = ("net", "uts", "mnt")


@dataclass(frozen=True)
class NsPaths:
    """The three files that pin one node's namespaces."""

    net: Path
    uts: Path
    mnt: Path

    @classmethod
    def under(cls, ns_dir: Path, node: str) -> NsPaths:
        """The conventional paths for `node` in a cluster's namespace directory."""
        return cls(ns_dir / f"{node}.net", ns_dir / f"{node}.uts", ns_dir / f"{node}.mnt")

    def all(self) -> list[Path]:
        """All three paths."""
        return [self.net, self.uts, self.mnt]

    def nsenter_args(self) -> list[str]:
        """nsenter options that enter these namespaces."""
        return [f"--net={self.net}", f"--uts={self.uts}", f"--mount={self.mnt}"]


@dataclass(frozen=True)
class Mount:
    """One mount inside a node: a bind of a host path, or a tmpfs."""

    target: str
    source: str | None = None
    fstype: str = "bind"
    options: str = ""
    mkdir: bool = False

    def command(self) -> str:
        """The shell line that makes this mount."""
        q = shlex.quote
        pre = f"mkdir -p {q(self.target)} && " if self.mkdir else ""
        if self.fstype == "bind":
            assert self.source is not None
            return f"{pre}mount --bind {q(self.source)} {q(self.target)}"
        opts = f" -o {q(self.options)}" if self.options else ""
        return f"{pre}mount -t {self.fstype}{opts} {self.fstype} {q(self.target)}"


def setup_script(hostname: str, ns_dir: Path, mounts: list[Mount]) -> str:
    """Shell run once inside a new node: hostname, drop inherited ns pins, then the mounts."""
    lines = [
        "set -e",
        f"hostname {shlex.quote(hostname)}",
        # Copies of other nodes' namespace pins would keep those namespaces alive.
        f"umount -l {shlex.quote(str(ns_dir))} 2>/dev/null || true",
        "if mountpoint -q /run/netns; then umount -l /run/netns; fi",
    ]
    lines += [m.command() for m in mounts]
    return "\n".join(lines) + "\n"


def make_private_dir(path: Path) -> None:
    """Bind `path` onto itself with private propagation (required to pin mount namespaces)."""
    path.mkdir(parents=True, exist_ok=True)
    if not is_mountpoint(path):
        run_command(["mount", "--bind", str(path), str(path)])
    run_command(["mount", "--make-private", str(path)])


def is_mountpoint(path: Path) -> bool:
    """True if `path` is a mount point in the host's mount namespace."""
    return run_command(["mountpoint", "-q", str(path)], check=False).returncode == 0


def create(ns: NsPaths, hostname: str, ns_dir: Path, mounts: list[Mount]) -> None:
    """Create and pin the namespaces of one node and run its setup script inside."""
    for p in ns.all():
        p.touch()
    script = setup_script(hostname, ns_dir, mounts)
    run_command(
        ["unshare", f"--net={ns.net}", f"--uts={ns.uts}", f"--mount={ns.mnt}",
         "--propagation", "private", "--", "/bin/sh", "-c", script],
        timeout=30,
    )


def release(path: Path) -> None:
    """Unpin one namespace file (or the private dir) and remove it; absent is fine."""
    if path.exists() or os.path.lexists(path):
        try:
            run_command(["umount", str(path)], timeout=10)
        except CommandError as err:
            if "not mounted" not in err.stderr and "no mount point" not in err.stderr:
                run_command(["umount", "-l", str(path)], check=False)
        if path.is_file():
            path.unlink(missing_ok=True)


def release_all(paths: list[Path]) -> None:
    """Unpin many namespace files with one `umount`; one by one only if that fails."""
    present = [p for p in paths if os.path.lexists(p)]
    if not present:
        return
    if run_command(["umount", *map(str, present)], check=False, timeout=60).returncode:
        for path in present:  # some were not mounted (a crash mid-create): each on its own
            release(path)
    for path in present:
        if path.is_file():
            path.unlink(missing_ok=True)
