"""Supervise every daemon of every node from one thread: restart with backoff on exit.

Exits are seen through pidfds (no polling, works for adopted processes that are not our
children). Each daemon follows the state machine of `states.py`; every change is an event.

The give-up policy (docs/architecture.md): an exit is restarted after 0.5 s, 1 s, 2 s,
4 s, then every 5 s (`max_backoff`); a daemon that ran `STABLE_AFTER` seconds starts
counting afresh; after `fatal_after` (10) quick failures in a row it is FATAL and not
restarted. For a compute node, that is the moment it is declared lost
(cluster/inventory.py), never earlier.

While its thread runs the supervisor touches a heartbeat file every `HEARTBEAT_EVERY`
seconds, and moves a deadline file's time as far past it as a heartbeat may be old: the
nodes' Slurm health check drains them once that deadline passed (the manager is dead, so
nothing would restart a crashed daemon; services/slurm.py).
"""

from __future__ import annotations

import logging
import os
import select
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from vhpc.cluster.events import EventBus
from vhpc.cluster.ledger import Entry, Kind, Ledger
from vhpc.cluster.states import DaemonState, check_transition
from vhpc.runtime import Runtime
from vhpc.runtime.proc import ProcessRecord
from vhpc.runtime.spawn import NodeTarget
from vhpc.services.base import DaemonSpec

log = logging.getLogger(__name__)

STABLE_AFTER = 10.0  # a daemon that ran this long resets its failure count
MAX_BACKOFF = 5.0
FATAL_AFTER = 10
HEARTBEAT_EVERY = 5.0
#: what the runtime's spawn returns: the child (None if not ours) and its identity
Spawned = tuple["subprocess.Popen[bytes] | None", ProcessRecord]


def heartbeat_age(path: Path, now: float | None = None) -> float | None:
    """Seconds since the supervisor last touched its heartbeat (None: no heartbeat)."""
    try:
        return max(0.0, (time.time() if now is None else now) - path.stat().st_mtime)
    except OSError:
        return None


def touch(path: Path, ahead: float = 0.0) -> None:
    """Mark the supervisor alive now: `path`'s modification time is now plus `ahead`."""
    when = time.time() + ahead
    try:
        os.utime(path, (when, when))
    except FileNotFoundError:
        try:
            path.touch()
            os.utime(path, (when, when))
        except OSError as err:
            log.warning("cannot write heartbeat %s: %s", path, err)
    except OSError as err:
        log.warning("cannot touch heartbeat %s: %s", path, err)


@dataclass
class Supervised:
    """One daemon under supervision."""

    spec: DaemonSpec
    target: NodeTarget
    state: DaemonState = DaemonState.STOPPED
    record: ProcessRecord | None = None
    popen: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    failures: int = 0
    started_at: float = 0.0
    next_start: float | None = None
    pidfd: int | None = None
    entry: Entry | None = None
    stopped: threading.Event = field(default_factory=threading.Event)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready summary."""
        return {
            "name": self.spec.name,
            "state": self.state.value,
            "pid": self.record.pid if self.record else None,
            "restarts": self.restarts,
        }


class Supervisor:
    """Starts, watches and restarts daemons; owned by one Cluster."""

    def __init__(self, runtime: Runtime, ledger: Ledger, events: EventBus,
                 max_backoff: float = MAX_BACKOFF, fatal_after: int = FATAL_AFTER,
                 heartbeat: Path | None = None,
                 deadline: tuple[Path, float] | None = None) -> None:
        self.runtime = runtime
        self.ledger = ledger
        self.events = events
        self.max_backoff = max_backoff
        self.fatal_after = fatal_after
        self.heartbeat = heartbeat
        self.deadline = deadline  # a file moved this many seconds past each heartbeat
        self._last_beat = 0.0
        self._daemons: dict[str, Supervised] = {}
        self._lock = threading.RLock()
        self._wake_r, self._wake_w = os.pipe()
        self._running = False
        self._thread: threading.Thread | None = None

    # -- public API -------------------------------------------------------------------
    def start_thread(self) -> None:
        """Begin watching (idempotent)."""
        if self._thread is None:
            self._running = True
            self._thread = threading.Thread(target=self._loop, name="supervisor", daemon=True)
            self._thread.start()

    def shutdown(self) -> None:
        """Stop watching; daemons keep running (a new manager can adopt them)."""
        self._running = False
        self._wake()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def start(self, spec: DaemonSpec, target: NodeTarget) -> Supervised:
        """Spawn a daemon now and supervise it."""
        with self._lock:
            daemon = self._daemons.get(spec.key) or Supervised(spec, target)
            self._daemons[spec.key] = daemon
            self._spawn(daemon)
        self._wake()
        return daemon

    def start_many(self, items: list[tuple[DaemonSpec, NodeTarget]],
                   workers: int = 4) -> list[Supervised]:
        """Spawn many daemons now (a boot's slurmds) and supervise them: the forks run
        `workers` at a time, outside the lock (each took ~10 ms, one after the other)."""
        with self._lock:
            daemons = []
            for spec, target in items:
                daemon = self._daemons.get(spec.key) or Supervised(spec, target)
                self._daemons[spec.key] = daemon
                self._begin(daemon)  # STARTING, no pidfd: the loop leaves it alone
                daemons.append(daemon)
        with ThreadPoolExecutor(max_workers=max(1, workers),
                                thread_name_prefix="spawn") as pool:
            spawned = list(pool.map(self._fork, daemons))
        with self._lock:
            for daemon, result in zip(daemons, spawned, strict=True):
                self._finish(daemon, result)
        self._wake()
        return daemons

    def adopt(self, spec: DaemonSpec, target: NodeTarget, record: ProcessRecord) -> Supervised:
        """Watch a daemon a previous manager started; restart it if it is gone."""
        with self._lock:
            daemon = Supervised(spec, target)
            self._daemons[spec.key] = daemon
            if self.runtime.is_alive(record):
                daemon.record = record
                daemon.started_at = time.time()
                daemon.entry = self.ledger.add(Kind.PROCESS, spec.key, spec.node,
                                               **record.to_dict())
                self._set(daemon, DaemonState.RUNNING)
                self._watch(daemon)
            else:
                self.events.emit("daemon_lost", f"{spec.key} was gone at adoption; restarting",
                                 spec.node, "warning")
                self._spawn(daemon)
        self._wake()
        return daemon

    def stop(self, key: str, grace: float = 5.0) -> None:
        """Stop one daemon on purpose (no restart) and wait for it to exit."""
        self.stop_many([key], grace)

    def stop_many(self, keys: list[str], grace: float = 5.0) -> None:
        """Stop daemons on purpose (no restart): signalled together, one grace period."""
        stopping: list[Supervised] = []
        with self._lock:
            for key in keys:
                daemon = self._daemons.get(key)
                if daemon is None or daemon.state is DaemonState.STOPPED:
                    continue
                if daemon.state in (DaemonState.BACKOFF, DaemonState.FATAL):
                    self._set(daemon, DaemonState.STOPPED)
                    self._forget(daemon)
                    continue
                self._set(daemon, DaemonState.STOPPING)
                stopping.append(daemon)
        self.runtime.terminate([d.record for d in stopping if d.record is not None], grace)
        for daemon in stopping:
            daemon.stopped.wait(timeout=2.0)
            with self._lock:
                if daemon.state is DaemonState.STOPPING:
                    self._on_exit(daemon)

    def stop_nodes(self, nodes: list[str], grace: float = 5.0) -> None:
        """Stop every daemon of these nodes together."""
        wanted = set(nodes)
        self.stop_many([d.spec.key for d in self.daemons() if d.spec.node in wanted], grace)

    def daemons(self, node: str | None = None) -> list[Supervised]:
        """Supervised daemons, optionally of one node."""
        with self._lock:
            return [d for d in self._daemons.values() if node is None or d.spec.node == node]

    def remove(self, key: str) -> None:
        """Forget a stopped daemon entirely."""
        with self._lock:
            self._daemons.pop(key, None)

    # -- internals --------------------------------------------------------------------
    def _set(self, daemon: Supervised, new: DaemonState) -> None:
        check_transition(daemon.state, new)
        log.debug("%s: %s -> %s", daemon.spec.key, daemon.state, new)
        daemon.state = new

    def _spawn(self, daemon: Supervised) -> None:
        self._begin(daemon)
        self._finish(daemon, self._fork(daemon))

    def _begin(self, daemon: Supervised) -> None:
        self._set(daemon, DaemonState.STARTING)
        daemon.stopped.clear()
        daemon.started_at = time.time()  # a start that fails at once is a quick failure

    def _fork(self, daemon: Supervised) -> Spawned | OSError:
        """The runtime's spawn of the daemon (no state changes: callable without the lock)."""
        try:
            return self.runtime.spawn(daemon.target, list(daemon.spec.argv),
                                      daemon.spec.log_file, daemon.spec.env)
        except OSError as err:
            return err

    def _finish(self, daemon: Supervised, spawned: Spawned | OSError) -> None:
        if isinstance(spawned, OSError):
            log.error("cannot start %s: %s", daemon.spec.key, spawned)
            self._backoff(daemon)
            return
        daemon.popen, daemon.record = spawned
        if daemon.spec.session_nice is not None:  # a restart gets it again
            self.runtime.weight_session(daemon.record, daemon.spec.session_nice)
        daemon.entry = self.ledger.add(Kind.PROCESS, daemon.spec.key, daemon.spec.node,
                                       **daemon.record.to_dict())
        self._set(daemon, DaemonState.RUNNING)
        self._watch(daemon)

    def _watch(self, daemon: Supervised) -> None:
        assert daemon.record is not None
        daemon.pidfd = self.runtime.pidfd(daemon.record)
        if daemon.pidfd is None and not self.runtime.is_alive(daemon.record):
            self._on_exit(daemon)

    def _forget(self, daemon: Supervised) -> None:
        if daemon.pidfd is not None:
            os.close(daemon.pidfd)
            daemon.pidfd = None
        if daemon.entry is not None:
            self.ledger.remove(daemon.entry)
            daemon.entry = None

    def _on_exit(self, daemon: Supervised) -> None:
        code = None
        if daemon.popen is not None:
            code = daemon.popen.poll()
            daemon.popen = None
        self._forget(daemon)
        if daemon.state is DaemonState.STOPPING:
            self._set(daemon, DaemonState.STOPPED)
            daemon.record = None
            daemon.stopped.set()
            return
        detail = f" (exit {code})" if code is not None else ""
        self.events.emit("daemon_exit", f"{daemon.spec.key} exited{detail}",
                         daemon.spec.node, "warning")
        self._backoff(daemon)

    def _backoff(self, daemon: Supervised) -> None:
        if time.time() - daemon.started_at > STABLE_AFTER:
            daemon.failures = 0
        daemon.failures += 1
        self._set(daemon, DaemonState.BACKOFF)
        if daemon.failures > self.fatal_after:
            self._set(daemon, DaemonState.FATAL)
            self.events.emit("daemon_fatal", f"{daemon.spec.key} keeps failing; gave up after "
                             f"{self.fatal_after} tries", daemon.spec.node, "error")
            return
        delay = min(0.5 * 2 ** (daemon.failures - 1), self.max_backoff)
        daemon.next_start = time.monotonic() + delay

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    def _beat(self) -> None:
        now = time.monotonic()
        if self.heartbeat is not None and now - self._last_beat >= HEARTBEAT_EVERY:
            self._last_beat = now
            touch(self.heartbeat)
            if self.deadline is not None:
                touch(*self.deadline)

    def _loop(self) -> None:
        while self._running:
            self._beat()
            with self._lock:
                watched = {d.pidfd: d for d in self._daemons.values() if d.pidfd is not None}
                due = [d.next_start for d in self._daemons.values()
                       if d.state is DaemonState.BACKOFF and d.next_start is not None]
            timeout = max(0.0, min(due) - time.monotonic()) if due else 1.0
            poller = select.poll()
            for fd in (self._wake_r, *watched):
                poller.register(fd, select.POLLIN)
            readable = [fd for fd, _ in poller.poll(timeout * 1000)]
            if self._wake_r in readable:
                os.read(self._wake_r, 4096)
            with self._lock:
                for fd in readable:
                    daemon = watched.get(fd)
                    if daemon is not None and daemon.pidfd == fd:
                        self._on_exit(daemon)
                self._restart_due()

    def _restart_due(self) -> None:
        now = time.monotonic()
        for daemon in list(self._daemons.values()):
            if (daemon.state is DaemonState.BACKOFF and daemon.next_start is not None
                    and daemon.next_start <= now):
                daemon.next_start = None
                daemon.restarts += 1
                self.events.emit("daemon_restart", f"restarting {daemon.spec.key} "
                                 f"(restart {daemon.restarts})", daemon.spec.node, "warning")
                self._spawn(daemon)
