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

    def fstab_line(self) -> str:
        """This mount as an fstab(5) line (all of a node's are made by one `mount -a`)."""
        opts = [o for o in self.options.split(",") if o]
        if self.fstype == "bind":
            assert self.source is not None
            source, fstype, opts = self.source, "none", ["bind", *opts]
        else:
            source, fstype = self.fstype, self.fstype
        if self.mkdir:
            opts.append("X-mount.mkdir")
        return f"{_fstab_escape(source)} {_fstab_escape(self.target)} {fstype} " \
               f"{','.join(opts) or 'defaults'} 0 0"


def _fstab_escape(path: str) -> str:
    return path.replace("\\", "\\134").replace(" ", "\\040").replace("\t", "\\011")


def render_fstab(mounts: list[Mount]) -> str:
    """The fstab of a node's own mounts, in order."""
    return "".join(m.fstab_line() + "\n" for m in mounts)


def setup_script(hostname: str, ns_dir: Path, fstab: Path) -> str:
    """Shell run once inside a new node: hostname, drop inherited ns pins, the mounts.

    Four processes a node (unshare, sh, umount, mount) instead of one per mount: this
    runs for every node of every boot.
    """
    q = shlex.quote
    return "\n".join([
        "set -e",
        f"echo {q(hostname)} > /proc/sys/kernel/hostname",
        # Copies of other nodes' namespace pins would keep those namespaces alive.
        f"umount -l {q(str(ns_dir))} /run/netns 2>/dev/null || true",
        f"mount -a -T {q(str(fstab))}",
    ]) + "\n"


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
    fstab = ns.mnt.with_suffix(".fstab")
    fstab.write_text(render_fstab(mounts))
    try:
        run_command(
            ["unshare", f"--net={ns.net}", f"--uts={ns.uts}", f"--mount={ns.mnt}",
             "--propagation", "private", "--", "/bin/sh", "-c",
             setup_script(hostname, ns_dir, fstab)],
            timeout=30,
        )
    finally:
        fstab.unlink(missing_ok=True)


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
