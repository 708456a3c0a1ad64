"""Start processes inside a node: join its cgroup, enter its namespaces, then exec.

`node_argv` builds the command without running it (ClusterShell's `_build_cmd` idea):
a tiny `sh` prologue writes its own pid into the node's cgroup files, then execs
`nsenter` into the node's namespaces, optionally `setpriv` to a user, then the program.
`spawn` forks that command straight into the node's PID namespace (runtime/pidns.py) and
leaves `--pid` out of nsenter, so sh and nsenter exec without forking: the pid returned
is the program's own. `vhpc exec` lets nsenter enter the PID namespace (and fork) instead.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from vhpc.errors import VhpcError
from vhpc.runtime import pidns
from vhpc.runtime.namespaces import NsPaths
from vhpc.runtime.proc import ProcessRecord, record_of

NODE_PATH = "/opt/vhpc/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: What a root login has (`vhpc exec` without --user; daemons do without): Open MPI 5
#: reads the home from $HOME alone ("Unable to get the user home directory" without it).
ROOT_LOGIN_ENV = {"HOME": "/root", "USER": "root", "LOGNAME": "root", "SHELL": "/bin/bash"}


@dataclass(frozen=True)
class UserLogin:
    """Who a command runs as inside a node, with a login-like environment."""

    name: str
    uid: int
    gid: int
    home: str
    shell: str = "/bin/bash"


@dataclass(frozen=True)
class NodeTarget:
    """Everything needed to run something inside one node."""

    name: str
    ns: NsPaths
    cgroup_procs: tuple[Path, ...]
    env: dict[str, str] = field(default_factory=dict)
    #: run before every spawn: gives the node a live init (cluster/node.py NodeInits)
    prepare: Callable[[], None] | None = field(default=None, compare=False, repr=False)


def join_prologue(procs_files: tuple[Path, ...]) -> str:
    """sh code that moves the shell (and so what it execs) into the cgroup."""
    writes = "; ".join(f"echo $$ > {shlex.quote(str(p))}" for p in procs_files)
    return f'{writes}; exec "$@"' if writes else 'exec "$@"'


def user_env(user: UserLogin, extra: dict[str, str]) -> dict[str, str]:
    """A login environment for `user` (HOME, USER, PATH...), plus extra variables."""
    env = {
        "HOME": user.home,
        "USER": user.name,
        "LOGNAME": user.name,
        "SHELL": user.shell,
        "PATH": NODE_PATH,
        "LANG": "C.UTF-8",
    }
    env.update(extra)
    return env


def node_argv(
    target: NodeTarget,
    command: list[str],
    *,
    user: UserLogin | None = None,
    cwd: str = "/",
    env: dict[str, str] | None = None,
    pid_ns: bool = True,
) -> list[str]:
    """The full argv that runs `command` inside the node (cgroup, namespaces, user).

    `pid_ns=False` leaves the PID namespace to the caller (see `spawn`).
    """
    base = dict(target.env)
    base.update(env or {})
    inner: list[str] = []
    if user is not None:
        inner += ["setpriv", f"--reuid={user.uid}", f"--regid={user.gid}", "--init-groups", "--"]
        base = user_env(user, base)
        cwd = user.home
    # env changes directory inside the node: nsenter's --wd opens the directory before
    # entering, i.e. in the host's tree, which a node with an image root cannot reach.
    inner += ["env", "-i", f"--chdir={cwd}", *(f"{k}={v}" for k, v in sorted(base.items())),
              *command]
    return [
        "/bin/sh", "-c", join_prologue(target.cgroup_procs), "vhpc-node",
        "nsenter", *target.ns.nsenter_args(pid=pid_ns), "--", *inner,
    ]


def spawn(target: NodeTarget, command: list[str], log_file: Path,
          env: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], ProcessRecord]:
    """Start a daemon in the node, detached in its own session, output to `log_file`."""
    if target.prepare is not None:
        try:
            target.prepare()
        except VhpcError as err:  # a failed start, as the supervisor knows them
            raise OSError(f"node {target.name} has no live init: {err}") from err
    argv = node_argv(target, command, env=env, pid_ns=False)
    # a node made before nodes had PID namespaces has no pin: start the daemon as before
    in_node = pidns.children_in(target.ns.pid) if os.path.lexists(target.ns.pid) \
        else contextlib.nullcontext()
    with open(log_file, "ab") as out, in_node:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, close_fds=True,
        )
    record = record_of(proc.pid) or ProcessRecord(proc.pid, 0)
    return proc, record


def exec_in_node(target: NodeTarget, command: list[str], user: UserLogin | None,
                 env: dict[str, str] | None = None) -> None:
    """Replace the current process with `command` inside the node (for `vhpc exec/shell`)."""
    argv = node_argv(target, command, user=user, env=env)
    os.execvp(argv[0], argv)
