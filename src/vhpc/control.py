"""Cluster life cycle from the outside: up (start a manager), down, clean, adopt, exec.

Used by the CLI and the Python API alike, so both behave the same.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vhpc.cluster import kept_logs
from vhpc.cluster.ledger import Kind, Ledger
from vhpc.errors import (
    BootError,
    ClusterStateError,
    ManagerUnavailableError,
    UserError,
    VhpcError,
)
from vhpc.runtime import facts, images, slurm_version, spread_dirs
from vhpc.server import launch
from vhpc.spec import ids, scale, shares
from vhpc.spec.load import ClusterOptions, build_spec, check_cluster_name
from vhpc.spec.model import HOST_IMAGE, ClusterSpec
from vhpc.spec.paths import ClusterPaths, state_root

if TYPE_CHECKING:
    from vhpc.client import ManagerClient
    from vhpc.models import DownResult
    from vhpc.runtime.proc import ProcessRecord
    from vhpc.runtime.spawn import NodeTarget, UserLogin

# `up` imports only what planning and starting the manager need; the HTTP client, the
# models, the runtime and the teardown are imported by the functions that use them.
MANAGER_KEY = "manager"  # the manager's ledger key (cluster/teardown.py)
ProgressFn = Callable[[str, int, int], None]
log = logging.getLogger(__name__)  # boot steps at INFO: `Cluster()` users see them via logging


@dataclass(frozen=True)
class UpResult:
    """What `up` returns: the spec and where the dashboard is."""

    spec: ClusterSpec
    dashboard: str


def is_up(name: str) -> bool:
    """True if the cluster has live resources in its ledger."""
    paths = ClusterPaths.of(name)
    return paths.ledger.exists() and not Ledger(paths.ledger).is_empty()


def list_clusters() -> list[str]:
    """Names of clusters with state on this host."""
    root = state_root()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir()  # '.trash-*' holds a ledger a moment
                  if not p.name.startswith(".") and (p / "ledger.jsonl").exists())


def plan(options: ClusterOptions) -> ClusterSpec:
    """Validate options against this host (no side effects).

    Under `host_lock` this also allocates the cluster id: the ids of the other clusters
    on the host and the host's link names are read while no other `up` can add to them.
    """
    check_cluster_name(options.name)
    if options.image != HOST_IMAGE:
        images.info(options.image)  # built? (if not: the built and the buildable ones)
    spec = build_spec(options, facts.gather(cluster_ids_in_use(exclude=options.name)))
    shares.check_host_dirs(spec.shares, os.path.isdir)  # vhpc never makes (or deletes) them
    # the renderers write for this version (services/slurm_versions.py)
    return replace(spec, slurm_version=slurm_version.of_image(spec.image))


def cluster_ids_in_use(exclude: str = "") -> frozenset[str]:
    """Cluster ids of every other cluster with state here: its spec, and its ledger's links."""
    root = state_root()
    if not root.is_dir():
        return frozenset()
    found: set[str] = set()
    for cluster in root.iterdir():
        if cluster.name == exclude or not cluster.is_dir():
            continue
        paths = ClusterPaths(cluster)
        try:
            found.add(ClusterSpec.from_dict(json.loads(paths.spec.read_text())).cluster_id)
        except (OSError, ValueError, KeyError, TypeError):
            pass
        found |= _ledger_link_ids(paths)
    return frozenset(found)


def _ledger_link_ids(paths: ClusterPaths) -> set[str]:
    """Cluster ids in the link names a cluster's ledger holds (none if it is unreadable)."""
    try:
        entries = Ledger(paths.ledger).entries() if paths.ledger.exists() else []
    except OSError:  # not root: planning only validates, the id is allocated as root
        return set()
    except (ValueError, KeyError):  # a ledger written by another vhpc version
        return set()
    return {cid for e in entries if e.kind in (Kind.VETH, Kind.BRIDGE)
            if (cid := ids.id_of_link(e.ident)) is not None}


@contextlib.contextmanager
def host_lock() -> Iterator[None]:
    """Serialize the part of `up` that picks a subnet and makes the bridge, host-wide."""
    root = state_root()
    root.mkdir(parents=True, exist_ok=True)
    spread_dirs.spread_subdirectories(root)  # each cluster's files in a group of its own
    with open(root / ".up.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def up(options: ClusterOptions, progress: ProgressFn | None = None,
       timeout: float | None = None) -> UpResult:
    """Boot a cluster through a new detached manager; return when all nodes are idle.

    `progress(step, done, total)` is called as the boot goes; each new step is also logged
    (logger ``vhpc.control``, INFO).
    """
    started = time.monotonic()
    check_cluster_name(options.name)  # it names the manager's process
    # The manager starts first and loads its modules (~0.1-0.3 s) while this process checks
    # and plans; it boots once it reads the spec, or exits at the end of its input (bad
    # input, not root: it made nothing).
    proc = _start_manager("boot", options.name, None)
    if os.geteuid() != 0:
        with _cancel_unless_sent(proc):
            plan(options)  # bad input is refused before anything else, root or not
            facts.require_root("vhpc up")
    progress = _logging_progress(options.name, progress)
    with _cancel_unless_sent(proc), host_lock():  # two `up`s must not pick the same subnet
        spec = plan(options)  # as root, planned once (its host facts are 4 processes)
        facts.require_binaries()
        if is_up(spec.name):
            raise ClusterStateError(
                f"cluster {spec.name!r} is already up: 'vhpc -c {spec.name} down' first, "
                "or pick another name with -c NAME"
            )
        paths = ClusterPaths.of(spec.name)
        if paths.root.exists():  # leftovers without a ledger: nothing owned, safe to drop
            shutil.rmtree(paths.root)
        _send(proc, json.dumps(spec.to_dict()))
        if timeout is None:  # grows with the node count (spec/scale.py)
            timeout = scale.manager_boot_timeout(len(spec.computes))
        # the lock is held until the bridge holds the subnet (other `up`s then see it)
        message = _follow_or_cancel(proc, progress, timeout, until=NETWORK_BUILT)
    if message is None:
        message = _follow_or_cancel(proc, progress, timeout)
    assert message is not None
    log.info("cluster %s is up in %.1fs: dashboard %s", spec.name, time.monotonic() - started,
             str(message.get("dashboard", "")).partition("?")[0])  # not the token
    return UpResult(spec, str(message.get("dashboard", "")))


def _logging_progress(name: str, progress: ProgressFn | None) -> ProgressFn:
    """`progress`, plus one log line per boot step (not per node)."""
    last = [""]

    def report(step: str, done: int, total: int) -> None:
        if step != last[0]:
            last[0] = step
            log.info("cluster %s: %s%s", name, step, f" ({total})" if total > 1 else "")
        if progress is not None:
            progress(step, done, total)

    return report


def _start_manager(mode: str, name: str, stdin_text: str | None = "") -> subprocess.Popen[str]:
    """Start a detached manager; `stdin_text` is its input (None: sent later by `_send`).

    A boot manager the `vhpc` script started for this cluster before the CLI loaded
    (cli/entry.py) is taken instead of a new one."""
    proc = (launch.take_early(name) if mode == "boot" else None) or launch.start(mode, name)
    if stdin_text is not None:
        _send(proc, stdin_text)
    return proc


def _send(proc: subprocess.Popen[str], text: str) -> None:
    """Give the manager its one line of input and close its stdin."""
    assert proc.stdin is not None
    try:
        proc.stdin.write(text + "\n")
        proc.stdin.close()
    except BrokenPipeError:  # it died: _follow_boot reports why from its stderr
        pass
    proc.stdin = None  # so communicate() does not touch the closed pipe


@contextlib.contextmanager
def _cancel_unless_sent(proc: subprocess.Popen[str]) -> Iterator[None]:
    """If planning fails before the manager got its spec, end it (it read no input, so it
    made nothing) and wait for it."""
    try:
        yield
    except BaseException:
        if proc.stdin is not None:
            _send(proc, "")
            _drain(proc)
        raise


NETWORK_BUILT = "creating nodes"  # the first progress message after the bridge exists


def _follow_or_cancel(proc: subprocess.Popen[str], progress: ProgressFn | None,
                      timeout: float, until: str | None = None) -> dict[str, Any] | None:
    """`_follow_boot`; on Ctrl-C the manager is told to roll back, and waited for."""
    try:
        return _follow_boot(proc, progress, timeout, until)
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGTERM)
        _drain(proc)
        raise


def _follow_boot(proc: subprocess.Popen[str], progress: ProgressFn | None,
                 timeout: float, until: str | None = None) -> dict[str, Any] | None:
    """Relay the manager's boot progress; the ready message, or None once `until` is seen."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    for line in proc.stdout:
        try:
            message = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "progress" in message and progress is not None:
            progress(message["progress"], message.get("done", 0), message.get("total", 0))
        if until is not None and message.get("progress") == until:
            return None
        elif "ready" in message:
            return dict(message)
        elif "error" in message:
            _drain(proc)
            raise BootError(message["error"])
        if time.monotonic() > deadline:
            proc.send_signal(signal.SIGTERM)
            _drain(proc)
            raise BootError(f"boot did not finish within {timeout:.0f}s; rolled back")
    stderr = _drain(proc)
    tail = stderr.strip().splitlines()[-1] if stderr.strip() else "no output"
    raise BootError(f"the manager exited during boot ({tail}); see 'vhpc clean' if anything "
                    "is left")


def _drain(proc: subprocess.Popen[str]) -> str:
    try:
        _, err = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        return ""
    return err or ""


def ensure_manager(name: str) -> ManagerClient:
    """A client of the cluster's manager, restarting (re-adopting) it if it is gone."""
    from vhpc.client import ManagerClient

    require_up(name)
    client = ManagerClient(name)
    try:
        client.ping()
        return client
    except ManagerUnavailableError:
        pass
    facts.require_root("restarting the manager")
    return _adopt(name)


def _adopt(name: str) -> ManagerClient:
    """Stop a stale manager (by its ledger record) and start one that adopts the cluster.

    Not while the cluster's `up` still runs: its manager serves nothing yet, and stopping
    it would cut the boot short (cluster/recovery.py would then remove the cluster).
    """
    from vhpc.client import ManagerClient
    from vhpc.cluster.recovery import booting_manager, dead_manager_note

    booting = booting_manager(ClusterPaths.of(name))
    if booting is not None:
        raise ClusterStateError(
            f"cluster {name!r} is still booting ('vhpc up' runs, manager pid {booting}): "
            f"wait for it, or cancel it with 'vhpc -c {name} down'")
    note = dead_manager_note(ClusterPaths.of(name))
    if note:  # on stderr for the CLI (no handler: logging's last resort), in logs otherwise
        log.warning("cluster %s: %s", name, note)
    _stop_stale_manager(name)
    _follow_boot(_start_manager("adopt", name), None, 120)
    return ManagerClient(name)


def _stop_stale_manager(name: str) -> None:
    from vhpc.cluster.teardown import process_record
    from vhpc.runtime.proc import is_alive, terminate

    ledger = Ledger(ClusterPaths.of(name).ledger)
    for entry in ledger.entries(Kind.PROCESS):
        if entry.ident == MANAGER_KEY:
            record = process_record(entry)
            if is_alive(record):
                terminate([record])
            ledger.remove(entry)


def require_up(name: str) -> None:
    """Refuse commands on a cluster that is not up."""
    check_cluster_name(name)
    if not is_up(name):
        others = [c for c in list_clusters() if c != name]
        hint = f" (clusters up: {', '.join(others)}; select one with -c NAME)" if others else \
            " ('vhpc up' starts it)"
        raise ClusterStateError(f"cluster {name!r} is not up{hint}")


def restart_manager(name: str) -> ManagerClient:
    """Stop the manager (the cluster keeps running) and start a new one that adopts it."""
    require_up(name)
    facts.require_root("vhpc manager restart")
    return _adopt(name)


def down(name: str) -> list[str]:
    """Stop and remove everything the cluster made; what could not be removed."""
    return down_result(name).leftovers


def down_result(name: str, keep_logs: bool = False) -> DownResult:
    """Stop and remove everything the cluster made; with `keep_logs` its logs move to a
    directory of their own first (cluster/kept_logs.py: `DownResult.logs` names it)."""
    from vhpc.client import ManagerClient
    from vhpc.cluster.teardown import process_record
    from vhpc.models import DownResult

    require_up(name)
    facts.require_root("vhpc down")
    managers = [process_record(e) for e in Ledger(ClusterPaths.of(name).ledger).entries(
        Kind.PROCESS) if e.ident == MANAGER_KEY]
    try:
        result = ManagerClient(name).down(keep_logs)
    except ManagerUnavailableError:
        kept: list[Path] = []
        leftovers = _remove(name, ClusterPaths.of(name), Ledger(ClusterPaths.of(name).ledger),
                            kept if keep_logs else None)
        result = DownResult(ok=not leftovers, leftovers=leftovers,
                            logs=str(kept[0]) if kept else "")
    _wait_gone(managers)
    return result


def _wait_gone(records: list[ProcessRecord], timeout: float = 10.0) -> None:
    from vhpc.runtime.proc import is_alive

    deadline = time.monotonic() + timeout
    while any(is_alive(r) for r in records) and time.monotonic() < deadline:
        time.sleep(0.05)


def clean(name: str, force: bool = False) -> list[str]:
    """Remove what a crashed cluster left, from its ledger (the manager too, if alive).

    A live cluster (its manager answers, or its daemons run) is refused unless `force`:
    'vhpc down' is how a running cluster is stopped.
    """
    check_cluster_name(name)
    facts.require_root("vhpc clean")
    paths = ClusterPaths.of(name)
    if not paths.ledger.exists():
        return []
    ledger = Ledger(paths.ledger)
    if not force:
        why = liveness(name, ledger)
        if why:
            raise ClusterStateError(
                f"cluster {name!r} is running ({why}): 'vhpc -c {name} down' stops it; "
                f"'vhpc -c {name} clean --force' removes it anyway"
            )
    return _remove(name, paths, ledger)


def _remove(name: str, paths: ClusterPaths, ledger: Ledger,
            kept: list[Path] | None = None) -> list[str]:
    """Teardown by the ledger; with `kept` (a list) the logs are kept and their path added."""
    from vhpc.cluster.teardown import remove_owned
    from vhpc.runtime.linux import LinuxRuntime

    def keep() -> None:
        where = kept_logs.keep(paths, name)
        if where is not None and kept is not None:
            kept.append(where)

    return remove_owned(ledger, LinuxRuntime(),
                        before_directories=keep if kept is not None else None)


def remove_kept_logs(name: str | None) -> list[Path]:
    """Remove the logs kept of failed boots and `down --keep-logs` (of one cluster, or
    every one's with None); the directories removed."""
    facts.require_root("vhpc clean")
    return kept_logs.remove_kept(name)


def remove_trash(name: str | None) -> list[Path]:
    """Remove the state directories an interrupted `down` left renamed aside (of one
    cluster, or every one's with None); the directories removed."""
    from vhpc.runtime import trash_sweep

    facts.require_root("vhpc clean")
    return trash_sweep.remove_trash(name, state_root())


def liveness(name: str, ledger: Ledger) -> str:
    """Why the cluster counts as live ('' if it does not): its manager answers, or daemons."""
    import httpx

    from vhpc.client import ManagerClient
    from vhpc.cluster.teardown import process_record
    from vhpc.runtime.proc import is_alive

    client = ManagerClient(name, timeout=3.0)
    try:
        client.ping()
        return "its manager answers"
    except httpx.TimeoutException:
        return "its manager is alive but slow to answer"
    except (ManagerUnavailableError, VhpcError, httpx.HTTPError):
        pass
    finally:
        client.close()
    daemons = [e for e in ledger.entries(Kind.PROCESS) if e.ident != MANAGER_KEY]
    alive = sum(1 for e in daemons if is_alive(process_record(e)))
    return f"{alive} of its daemons are alive" if alive else ""


def load_spec(name: str) -> ClusterSpec:
    """The spec of a running cluster."""
    require_up(name)
    return ClusterSpec.from_dict(json.loads(ClusterPaths.of(name).spec.read_text()))


def target_of(name: str, node: str) -> tuple[ClusterSpec, NodeTarget]:
    """How to run something in a node of a running cluster."""
    from vhpc.cluster.node import cgroup_group, node_target
    from vhpc.runtime.linux import LinuxRuntime

    spec = load_spec(name)
    try:
        found = spec.node(node)
    except KeyError:
        known = ", ".join(n.name for n in spec.nodes[:6])
        raise UserError(f"cluster {name!r} has no node {node!r} (nodes: {known}, ...; "
                        "'vhpc status' lists them)") from None
    if found.stopped:  # its processes, PID namespace and init are gone until it starts
        raise ClusterStateError(f"node {node!r} is stopped: 'vhpc -c {name} node start "
                                f"{node}' first")
    paths = ClusterPaths.of(name)
    runtime = LinuxRuntime()
    procs = runtime.cgroup_procs_files(cgroup_group(name, node))
    return spec, node_target(spec, paths, node, procs)


def login_of(spec: ClusterSpec, user: str | None) -> UserLogin | None:
    """The login of `user` inside the cluster (None = root)."""
    from vhpc.runtime.spawn import UserLogin

    if user in (None, "root"):
        return None
    homes = ClusterPaths.of(spec.name).home
    if user == spec.user:
        return UserLogin(spec.user, spec.user_uid, spec.user_uid, str(homes / spec.user))
    other = next((u for u in spec.users if u.name == user), None)
    if other is None:
        known = ", ".join([spec.user, *(u.name for u in spec.users)])
        raise UserError(f"unknown user {user!r}: the cluster's users are {known} "
                        "(or omit --user for root)",
                        fix=f"add one with 'vhpc -c {spec.name} user add NAME --account A'")
    return UserLogin(other.name, other.uid, other.uid, str(homes / other.name))


def exec_argv(name: str, node: str, command: list[str], user: str | None) -> list[str]:
    """The argv that runs `command` in `node` as `user` (see runtime.spawn.node_argv)."""
    from vhpc.runtime.spawn import ROOT_LOGIN_ENV, node_argv

    spec, target = target_of(name, node)
    login = login_of(spec, user)
    env = {"TERM": os.environ.get("TERM", "xterm"), **(ROOT_LOGIN_ENV if login is None else {})}
    return node_argv(target, command, user=login, env=env)
