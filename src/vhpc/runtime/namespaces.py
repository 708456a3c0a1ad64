"""Persistent node namespaces (net, UTS, IPC, mount, cgroup, PID) kept as files in a
private dir.

A node's first process is its init: forked by this thread straight into a new PID
namespace (runtime/pidns.py), it joins the node cgroup, unshares net, UTS, IPC, mount and
cgroup namespaces (the cgroup one rooted at the node's cgroup, so cgroup filesystems
mounted in the node show its subtree: Slurm's job cgroups go there), runs the setup
script (a pure function, tested as text: hostname, drop inherited namespace pins, the
node's mounts including its own /proc and /dev/shm) and then stays as pid 1, reaping
orphans. The six namespaces are pinned to files from its /proc entry (nodes made before
nodes had a cgroup namespace have no such pin: nothing enters one). Killing the init
ends the PID namespace and every process left in it.
"""

from __future__ import annotations

import os
import select
import shlex
import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vhpc.errors import CommandError
from vhpc.runtime import mount_calls, pidns
from vhpc.runtime.hostops import run_command
from vhpc.runtime.proc import ProcessRecord, record_of
from vhpc.runtime.umount import umount_each

NS_KINDS = ("net", "uts", "ipc", "mnt", "cgroup", "pid")

#: pid 1 of a node once set up: `wait` in dash reaps any child (orphans reparented to it
#: included) for as long as the `sleep` job runs, and the loop restarts that job.
INIT_LOOP = "while :; do sleep 86400 & wait; done"
INIT_NAME = "vhpc-init"
READY = "ready"
#: the source name of the clusters' private namespace directories (tmpfs), in mountinfo
PRIVATE_DIR_FS = "vhpc-ns"
#: fstab source of a node's root overlay (cluster/image_root.py): its init pivots into it.
ROOT_SOURCE = "vhpc-root"


@dataclass(frozen=True)
class NsPaths:
    """The files that pin one node's namespaces (same order as NS_KINDS)."""

    net: Path
    uts: Path
    ipc: Path
    mnt: Path
    pid: Path
    cgroup: Path

    @classmethod
    def under(cls, ns_dir: Path, node: str) -> NsPaths:
        """The conventional paths for `node` in a cluster's namespace directory."""
        net, uts, ipc, mnt, cgroup, pid = (ns_dir / f"{node}.{kind}" for kind in NS_KINDS)
        return cls(net, uts, ipc, mnt, pid, cgroup)

    def all(self) -> list[Path]:
        """All the paths, in NS_KINDS order."""
        return [self.net, self.uts, self.ipc, self.mnt, self.cgroup, self.pid]

    def nsenter_args(self, pid: bool = True) -> list[str]:
        """nsenter options that enter these namespaces (`pid`: the PID one too; nsenter
        then forks, and the program runs as its child)."""
        args = [f"--net={self.net}", f"--uts={self.uts}", f"--ipc={self.ipc}",
                f"--mount={self.mnt}"]
        if os.path.lexists(self.cgroup):  # nodes made before they had a cgroup namespace
            args.append(f"--cgroup={self.cgroup}")
        return [*args, f"--pid={self.pid}"] if pid else args


@dataclass(frozen=True)
class Mount:
    """One mount inside a node: a bind of a host path, or a filesystem (tmpfs, proc)."""

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
        else:  # a tmpfs or proc: `source` names it (see cluster/node.py SHM_SOURCE)
            source, fstype = self.source or self.fstype, self.fstype
        if self.mkdir:
            opts.append("X-mount.mkdir")
        return f"{_fstab_escape(source)} {_fstab_escape(self.target)} {fstype} " \
               f"{','.join(opts) or 'defaults'} 0 0"


def _fstab_escape(path: str) -> str:
    return path.replace("\\", "\\134").replace(" ", "\\040").replace("\t", "\\011")


def render_fstab(mounts: list[Mount]) -> str:
    """The fstab of a node's own mounts, in order."""
    return "".join(m.fstab_line() + "\n" for m in mounts)


def join_cgroup_argv(cgroup_procs: list[Path] | tuple[Path, ...]) -> list[str]:
    """argv prefix: a shell that moves itself into the cgroup, then execs the rest.

    Used before entering or making a cgroup namespace: its root is the cgroup of the
    process that makes it, and inside a node the host's cgroup paths are not mounted.
    """
    writes = "".join(f"echo $$ > {shlex.quote(str(p))}; " for p in cgroup_procs)
    return ["/bin/sh", "-c", f'{writes}exec "$@"', "vhpc-node"]


def setup_script(hostname: str, ns_dir: Path, fstab: Path,
                 cgroup_procs: list[Path] | tuple[Path, ...] = (),
                 new_root: str | None = None) -> str:
    """Shell run as pid 1 of a new node: join its cgroup, set it up, then become its init.

    Few processes a node (sh, umount, mount, sleep): this runs for every node of every boot.
    With `new_root` (an image node) it pivots into that mount after the mounts; the old
    root goes with `umount -l` (the image's umount, which reads the node's new /proc).
    """
    q = shlex.quote
    return "\n".join([
        "set -e",
        *(f"echo $$ > {q(str(p))}" for p in cgroup_procs),
        f"echo {q(hostname)} > /proc/sys/kernel/hostname",
        # The fstab lives in the namespace directory (a tmpfs): read through an fd once
        # that is gone. Copies of other nodes' namespace pins would keep those namespaces
        # alive (and make every `mount -a` read them all from mountinfo).
        f"exec 3< {q(str(fstab))}",
        f"umount -l {q(str(ns_dir))} /run/netns 2>/dev/null || true",
        "mount -a -T /proc/self/fd/3",
        "exec 3<&-",
        *pivot_lines(new_root),
        # Never the OOM killer's pick: its death would end the node (not allowed everywhere).
        "echo -1000 2>/dev/null > /proc/self/oom_score_adj || true",
        f"echo {READY}",
        init_exec(ns_dir / hostname),
    ]) + "\n"


def pivot_lines(new_root: str | None) -> list[str]:
    """Shell lines making `new_root` the node's root (none without one)."""
    if new_root is None:
        return []
    return [f"cd {shlex.quote(new_root)}", "pivot_root . .", "umount -l .", "cd /"]


def new_root_of(mounts: list[Mount]) -> str | None:
    """The target of the node's root overlay among its mounts, if it has one."""
    return next((m.target for m in mounts if m.source == ROOT_SOURCE), None)


def init_exec(node_pins: Path) -> str:
    """The setup script's last line: become the init loop (its command line names the
    node's namespace pins, so a leak check that looks for the state directory finds it)."""
    q = shlex.quote
    return f"exec /bin/sh -c {q(INIT_LOOP)} {INIT_NAME} {q(str(node_pins))} " \
           "</dev/null >/dev/null 2>&1"


def make_private_dir(path: Path) -> None:
    """A tmpfs at `path` with private propagation (required to pin mount namespaces).

    A tmpfs, not the directory bound onto itself: the pins (6 files a node) and the
    nodes' fstabs are then no inodes of the host's file system, made at every boot and
    deleted at every `down` (spread_dirs.py: on ext4 without a journal, each deleted
    inode slows the next file creations in its group for minutes). Its lazy unmount at
    teardown (`release_all`) takes the files with it."""
    path.mkdir(parents=True, exist_ok=True)
    path = path.resolve()
    if not mount_calls.is_mount_point(path):
        mount_calls.mount_tmpfs(path, PRIVATE_DIR_FS, "mode=0755")
    mount_calls.make_private(path)


def create(ns: NsPaths, hostname: str, ns_dir: Path, mounts: list[Mount],
           cgroup_procs: list[Path], timeout: float = 30.0) -> ProcessRecord:
    """Create and pin the namespaces of one node, set it up; return its init's identity."""
    kinds = kinds_made(mounts)
    pins = [(kind, path) for kind, path in zip(NS_KINDS, ns.all(), strict=True)
            if kind in kinds]
    for _, path in pins:
        path.touch()
    fstab = ns.mnt.with_suffix(".fstab")
    fstab.write_text(render_fstab(mounts))
    argv = [*join_cgroup_argv(cgroup_procs),
            "unshare", *(f"--{UNSHARE_FLAG.get(k, k)}" for k in kinds if k != "pid"),
            "--propagation", "private", "--", "/bin/sh", "-c",
            setup_script(hostname, ns_dir, fstab, new_root=new_root_of(mounts))]
    def pin_all(pid: int) -> None:
        for kind, path in pins:
            pidns.pin(pid, kind, path)

    try:
        return _start_init(argv, timeout, pin_all, f"the init of node {hostname}")
    finally:
        fstab.unlink(missing_ok=True)


#: unshare(1)'s option for a namespace kind, where it differs from the kind's name
UNSHARE_FLAG = {"mnt": "mount"}


def kinds_made(mounts: list[Mount]) -> list[str]:
    """The namespaces a new node gets, in NS_KINDS order: a cgroup namespace only when the
    node mounts cgroup filesystems of its own, which then show its subtree (elsewhere
    /proc/self/cgroup would name paths that the host's cgroup mount does not have)."""
    cgroup = any(m.fstype in ("cgroup", "cgroup2") for m in mounts)
    return [k for k in NS_KINDS if k != "cgroup" or cgroup]


def revive_script(cgroup_procs: list[Path] | tuple[Path, ...], node_pins: Path) -> str:
    """Shell run as pid 1 of a new PID namespace in a node whose init died: its own /proc."""
    q = shlex.quote
    return "\n".join([
        "set -e",
        *(f"echo $$ > {q(str(p))}" for p in cgroup_procs),
        "umount -l /proc 2>/dev/null || true",  # the dead namespace's
        "mount -t proc -o nosuid,nodev,noexec vhpc-proc /proc",
        "echo -1000 2>/dev/null > /proc/self/oom_score_adj || true",
        f"echo {READY}",
        init_exec(node_pins),
    ]) + "\n"


def revive(ns: NsPaths, cgroup_procs: list[Path], timeout: float = 30.0) -> ProcessRecord:
    """A new init (and PID namespace) for a node whose init died, e.g. with `node stop`.

    The node keeps its network, hostname and mounts (those namespaces are pinned).
    """
    argv = [*join_cgroup_argv(cgroup_procs), "nsenter", *ns.nsenter_args(pid=False), "--",
            "/bin/sh", "-c", revive_script((), ns.pid.with_suffix(""))]

    def repin(pid: int) -> None:
        pidns.unpin(ns.pid)
        pidns.pin(pid, "pid", ns.pid)

    return _start_init(argv, timeout, repin, f"the new init of {ns.pid.stem}")


def _start_init(argv: list[str], timeout: float, pin: Callable[[int], None],
                what: str) -> ProcessRecord:
    """Start a node's init (argv prints READY once set up), pin its namespaces with
    `pin(pid)` and return its identity; on any failure the init is killed."""
    with pidns.children_in(None):
        init = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True, close_fds=True)
    try:
        _wait_ready(init, argv, timeout)
        pin(init.pid)
        record = record_of(init.pid)
        if record is None:
            raise CommandError(argv, -1, f"{what} exited")
    except BaseException:
        init.kill()
        init.wait()
        raise
    return record


def _wait_ready(init: subprocess.Popen[bytes], argv: list[str], timeout: float) -> None:
    """Wait for the setup script's ready line; raise with its stderr if it failed."""
    assert init.stdout is not None and init.stderr is not None
    # poll, not select: a manager of 768 nodes holds over 1024 descriptors (select's limit)
    poller = select.poll()
    poller.register(init.stdout, select.POLLIN)
    readable = poller.poll(timeout * 1000)
    line = init.stdout.readline().decode(errors="replace").strip() if readable else ""
    if line == READY:
        init.stdout.close()
        init.stderr.close()
        return
    if init.poll() is None:
        init.send_signal(signal.SIGKILL)
    init.wait()
    stderr = init.stderr.read().decode(errors="replace")
    init.stdout.close()
    init.stderr.close()
    raise CommandError(argv, init.returncode if line or readable else -1,
                       stderr or f"no ready line within {timeout:.0f}s")


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
    """Unpin many namespace files and mount points (a system call each: runtime/umount.py).

    Parents first: a directory among the paths (a cluster's private `ns` directory) is
    unmounted lazily with every pin below it in one call (6144 calls at 1024 nodes took
    8 s), and those pins are left as files in it. A path that fails (not mounted, a crash
    mid-create) goes through `release` on its own; the files of unpinned pins go.
    """
    present = [p for p in paths if os.path.lexists(p)]
    released: set[Path] = set()
    for path in sorted(present, key=lambda p: len(p.parts)):
        if any(parent in released for parent in path.parents):
            continue  # went with its directory
        if umount_each([path]):  # not mounted (a crash mid-create): each on its own
            release(path)
        else:
            released.add(path)
        if path.is_file():
            path.unlink(missing_ok=True)
