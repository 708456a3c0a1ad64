"""The registry: node records in etcd, held by a lease the manager keeps alive, and the
watcher that feeds dnsmasq's hosts directory from them.

    /vhpc/<cluster>/nodes/<name> -> {"name", "role", "ip", "cpuset", "memory",
                                      "features", "state"}

The manager is the only writer (etcd client auth, see services/etcd.py); anyone may read
(`etcdctl get --prefix /vhpc/` as the `reader` user). etcd is reached through its v3 JSON
gateway (`HttpEtcd`, cluster/etcd_client.py) behind the small `EtcdKV` Protocol, so unit
tests run the same reconciliation code against a fake store.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Protocol

from vhpc.cluster.etcd_client import HttpEtcd, RegistryUnavailableError, prefix_end
from vhpc.services.dnsmasq import apply_hosts_dir

__all__ = ["HttpEtcd", "RegistryUnavailableError", "apply_hosts_dir", "prefix_end"]

log = logging.getLogger(__name__)

UP = "up"
STOPPED = "stopped"
LOST = "lost"
DRAINING = "draining"
RESOLVABLE_STATES = frozenset({UP, DRAINING})


@dataclass(frozen=True)
class NodeRecord:
    """What the registry says about one node."""

    name: str
    role: str
    ip: str
    cpuset: str
    memory: int
    features: tuple[str, ...] = ()
    state: str = UP

    @property
    def resolvable(self) -> bool:
        """Whether DNS should answer for this node."""
        return self.state in RESOLVABLE_STATES

    def with_state(self, state: str) -> NodeRecord:
        """A copy in another state."""
        return replace(self, state=state)

    def to_json(self) -> str:
        """The value stored in etcd."""
        data = asdict(self)
        data["features"] = list(self.features)
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> NodeRecord:
        """Inverse of :meth:`to_json`."""
        data = json.loads(text)
        return cls(name=data["name"], role=data["role"], ip=data["ip"], cpuset=data["cpuset"],
                   memory=int(data["memory"]), features=tuple(data.get("features", ())),
                   state=data.get("state", UP))


class EtcdKV(Protocol):
    """The few etcd v3 operations the registry needs."""

    def get_prefix(self, prefix: str) -> tuple[dict[str, str], int]: ...
    def put(self, key: str, value: str, lease: int = 0) -> None: ...
    def delete(self, key: str) -> None: ...
    def grant(self, ttl: int) -> int: ...
    def keepalive(self, lease: int) -> int: ...
    def revoke(self, lease: int) -> None: ...
    def watch(self, prefix: str, start_revision: int, stop: threading.Event
              ) -> Iterator[int]: ...


@dataclass
class Registry:
    """Writes this cluster's node records under one lease and keeps the lease alive.

    The manager holds the wanted records in memory; if the lease is ever lost (etcd
    restarted without its data, a long pause), a new one is granted and every record is
    written again.
    """

    kv: EtcdKV
    prefix: str
    ttl: int = 10
    lease: int = 0
    records: dict[str, NodeRecord] = field(default_factory=dict)
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _closing: threading.Event = field(default_factory=threading.Event)  # records go for good
    _thread: threading.Thread | None = None

    def key(self, name: str) -> str:
        """The etcd key of a node's record."""
        return self.prefix + name

    def start(self, records: list[NodeRecord]) -> None:
        """Grant a lease, write every record and start the keep-alive thread."""
        with self._lock:
            self.records = {r.name: r for r in records}
            try:
                self._republish()
            except RegistryUnavailableError as err:
                log.warning("registry not written yet (%s); will retry", err)
        self._thread = threading.Thread(target=self._keepalive_loop, name="registry-lease",
                                        daemon=True)
        self._thread.start()

    def stop(self, revoke: bool = False) -> None:
        """Stop keeping the lease alive (records expire after `ttl` unless revoked now;
        revoking also abandons a rewrite of every record under way: at 1024 nodes one
        held the cluster's teardown for seconds)."""
        if revoke:
            self._closing.set()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if revoke and self.lease:
            try:
                self.kv.revoke(self.lease)
            except RegistryUnavailableError:
                pass

    def publish(self, record: NodeRecord) -> None:
        """Write (or overwrite) a node's record."""
        with self._lock:
            self.records[record.name] = record
            self._put(record)

    def set_state(self, name: str, state: str) -> None:
        """Change the state of a node's record (DNS follows)."""
        with self._lock:
            record = self.records.get(name)
            if record is not None and record.state != state:
                self.publish(record.with_state(state))

    def withdraw(self, name: str) -> None:
        """Delete a node's record."""
        with self._lock:
            self.records.pop(name, None)
            try:
                self.kv.delete(self.key(name))
            except RegistryUnavailableError as err:
                log.warning("could not delete record of %s: %s", name, err)

    def _put(self, record: NodeRecord) -> None:
        try:
            if not self.lease:
                self.lease = self.kv.grant(self.ttl)
            self.kv.put(self.key(record.name), record.to_json(), self.lease)
        except RegistryUnavailableError as err:
            log.warning("could not write record of %s (will retry): %s", record.name, err)
            self.lease = 0

    def _republish(self) -> None:
        self.lease = self.kv.grant(self.ttl)
        for record in list(self.records.values()):
            if self._closing.is_set():
                return  # the cluster is going: its records are revoked
            self.kv.put(self.key(record.name), record.to_json(), self.lease)

    def tick(self) -> None:
        """One keep-alive round: refresh the lease, or re-grant and rewrite if it is gone."""
        with self._lock:
            try:
                if self.lease and self.kv.keepalive(self.lease) > 0:
                    return
                log.warning("registry lease lost; writing every record again")
                self._republish()
            except RegistryUnavailableError as err:
                log.warning("registry keep-alive failed: %s", err)
                self.lease = 0

    def _keepalive_loop(self) -> None:
        interval = max(0.5, self.ttl / 3)
        while not self._stop.wait(interval):
            self.tick()


def hosts_files(records: list[NodeRecord], render: Callable[[NodeRecord], str]
                ) -> dict[str, str]:
    """File name -> content of dnsmasq's hosts directory for these records."""
    return {r.name: render(r) for r in records if r.resolvable}


def parse_records(values: dict[str, str]) -> list[NodeRecord]:
    """Records from a prefix read; unreadable values are skipped."""
    out = []
    for key, text in values.items():
        try:
            out.append(NodeRecord.from_json(text))
        except (ValueError, KeyError) as err:
            log.warning("ignoring bad record %s: %s", key, err)
    return out


class DnsFeed:
    """Follows the registry and keeps dnsmasq's hosts directory equal to its records."""

    def __init__(self, kv: EtcdKV, prefix: str, hostsdir: Path,
                 render: Callable[[NodeRecord], str],
                 ready: Callable[[], bool] = lambda: True) -> None:
        self.kv = kv
        self.ready = ready  # don't follow an empty registry before the writer filled it
        self.prefix = prefix
        self.hostsdir = hostsdir
        self.render = render
        self.syncs = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sync(self) -> int:
        """Read every record and rewrite what changed; return the revision read."""
        values, revision = self.kv.get_prefix(self.prefix)
        wanted = hosts_files(parse_records(values), self.render)
        apply_hosts_dir(self.hostsdir, wanted)
        self.syncs += 1
        return revision

    def wait_for(self, present: Iterable[str] = (), absent: Iterable[str] = (),
                 timeout: float = 3.0) -> bool:
        """Wait until the hosts directory names `present` and not `absent` (dnsmasq reads
        it on inotify right away); False on timeout."""
        present, absent = list(present), list(absent)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all((self.hostsdir / n).exists() for n in present) and \
                    not any((self.hostsdir / n).exists() for n in absent):
                return True
            time.sleep(0.02)
        return False

    def start(self) -> None:
        """Sync now and follow changes in a thread."""
        self._thread = threading.Thread(target=self._loop, name="dns-feed", daemon=True)
        self._thread.start()

    def stop(self, wait: bool = True) -> None:
        """Stop following (the hosts directory stays as it is).

        Does not wait for a watch request in flight (at most 0.2 s for the loop, none
        without `wait`): the thread checks the flag before it writes anything, and it is
        a daemon thread.
        """
        self._stop.set()
        if self._thread is not None and wait:
            self._thread.join(timeout=0.2)

    def _loop(self) -> None:
        while not self._stop.is_set() and not self.ready():
            self._stop.wait(0.2)
        while not self._stop.is_set():
            try:
                revision = self.sync()
                for _ in self.kv.watch(self.prefix, revision + 1, self._stop):
                    if self._stop.is_set():
                        return
                    self.sync()
            except RegistryUnavailableError as err:
                log.warning("dns feed: %s; retrying", err)
                self._stop.wait(1.0)


def wait_healthy(check: Callable[[], bool], timeout: float) -> bool:
    """Poll `check` until it is true or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False
