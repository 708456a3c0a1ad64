"""Registry and DNS feed against a fake etcd (same EtcdKV Protocol as HttpEtcd)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from vhpc.cluster.registry import (
    LOST,
    STOPPED,
    UP,
    DnsFeed,
    EtcdKV,
    NodeRecord,
    Registry,
    RegistryUnavailableError,
    apply_hosts_dir,
    hosts_files,
    prefix_end,
)

PREFIX = "/vhpc/t/nodes/"


class FakeEtcd:
    """An in-memory etcd: keys with leases, revisions, and a watch that wakes on change."""

    def __init__(self) -> None:
        self.kv: dict[str, tuple[str, int]] = {}
        self.leases: dict[int, int] = {}
        self.revision = 1
        self.next_lease = 100
        self.down = False
        self.changed = threading.Condition()

    def _check(self) -> None:
        if self.down:
            raise RegistryUnavailableError("etcd is down")

    def _bump(self) -> None:
        with self.changed:
            self.revision += 1
            self.changed.notify_all()

    def get_prefix(self, prefix: str) -> tuple[dict[str, str], int]:
        self._check()
        return {k: v for k, (v, _) in self.kv.items() if k.startswith(prefix)}, self.revision

    def put(self, key: str, value: str, lease: int = 0) -> None:
        self._check()
        if lease and lease not in self.leases:
            raise RegistryUnavailableError("lease not found")
        self.kv[key] = (value, lease)
        self._bump()

    def delete(self, key: str) -> None:
        self._check()
        self.kv.pop(key, None)
        self._bump()

    def grant(self, ttl: int) -> int:
        self._check()
        self.next_lease += 1
        self.leases[self.next_lease] = ttl
        return self.next_lease

    def keepalive(self, lease: int) -> int:
        self._check()
        return self.leases.get(lease, 0)

    def revoke(self, lease: int) -> None:
        self.expire(lease)

    def expire(self, lease: int) -> None:
        """What etcd does when a lease runs out: its keys go."""
        self.leases.pop(lease, None)
        for key in [k for k, (_, le) in self.kv.items() if le == lease]:
            del self.kv[key]
        self._bump()

    def watch(self, prefix: str, start_revision: int, stop: threading.Event
              ) -> Iterator[int]:
        seen = start_revision - 1
        while not stop.is_set():
            with self.changed:
                if self.revision <= seen:
                    self.changed.wait(0.05)
                current = self.revision
            if current > seen:
                seen = current
                yield current


def record(name: str, state: str = UP, ip: str = "10.0.0.10") -> NodeRecord:
    return NodeRecord(name, "compute", ip, "0", 125 << 20, ("a",), state)


def render(r: NodeRecord) -> str:
    return f"{r.ip} {r.name}.t {r.name}\n"


def test_fake_satisfies_the_protocol() -> None:
    kv: EtcdKV = FakeEtcd()
    assert kv.get_prefix(PREFIX) == ({}, 1)


def test_record_round_trips_through_json() -> None:
    r = record("compute3", LOST)
    assert NodeRecord.from_json(r.to_json()) == r
    assert not r.resolvable and record("x").resolvable


def test_prefix_end_is_the_next_key_after_the_prefix() -> None:
    assert prefix_end("/vhpc/t/nodes/") == "/vhpc/t/nodes0"


def test_start_writes_every_record_under_one_lease() -> None:
    etcd = FakeEtcd()
    registry = Registry(etcd, PREFIX, ttl=10)
    registry.start([record("compute0"), record("compute1")])
    try:
        leases = {lease for _, lease in etcd.kv.values()}
        assert set(etcd.kv) == {PREFIX + "compute0", PREFIX + "compute1"}
        assert leases == {registry.lease}
    finally:
        registry.stop()


def test_a_lost_lease_is_granted_again_and_every_record_rewritten() -> None:
    etcd = FakeEtcd()
    registry = Registry(etcd, PREFIX)
    registry.start([record("compute0")])
    registry.stop()
    etcd.expire(registry.lease)
    assert etcd.kv == {}
    registry.tick()
    assert PREFIX + "compute0" in etcd.kv
    assert etcd.kv[PREFIX + "compute0"][1] == registry.lease


def test_revoking_stop_abandons_a_rewrite_under_way() -> None:
    """A teardown (stop with revoke) does not wait for every record to be written again."""
    etcd = FakeEtcd()
    registry = Registry(etcd, PREFIX)
    registry.start([record(f"compute{i}") for i in range(5)])
    registry.stop()
    etcd.expire(registry.lease)
    puts: list[str] = []
    real_put = etcd.put

    def put_then_tear_down(key: str, value: str, lease: int = 0) -> None:
        real_put(key, value, lease)
        puts.append(key)
        registry.stop(revoke=True)  # the teardown arrives during the rewrite

    etcd.put = put_then_tear_down  # type: ignore[method-assign]
    registry.tick()
    assert puts == [PREFIX + "compute0"]


def test_keepalive_failures_are_retried_not_raised() -> None:
    etcd = FakeEtcd()
    registry = Registry(etcd, PREFIX)
    registry.start([record("compute0")])
    registry.stop()
    etcd.down = True
    registry.tick()  # no exception
    assert registry.lease == 0
    etcd.down = False
    registry.tick()
    assert etcd.kv[PREFIX + "compute0"][1] == registry.lease != 0


def test_set_state_and_withdraw_update_etcd() -> None:
    etcd = FakeEtcd()
    registry = Registry(etcd, PREFIX)
    registry.start([record("compute0"), record("compute1")])
    registry.stop()
    registry.set_state("compute0", STOPPED)
    assert NodeRecord.from_json(etcd.kv[PREFIX + "compute0"][0]).state == STOPPED
    registry.withdraw("compute1")
    assert PREFIX + "compute1" not in etcd.kv and "compute1" not in registry.records


def test_hosts_files_skip_nodes_that_must_not_resolve() -> None:
    files = hosts_files([record("a"), record("b", STOPPED), record("c", LOST)], render)
    assert files == {"a": "10.0.0.10 a.t a\n"}


def test_apply_hosts_dir_writes_changes_and_removes_stale(tmp_path: Path) -> None:
    (tmp_path / "old").write_text("x")
    (tmp_path / "same").write_text("1\n")
    written, removed = apply_hosts_dir(tmp_path, {"same": "1\n", "new": "2\n"})
    assert written == ["new"] and removed == ["old"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new", "same"]


def test_dns_feed_follows_the_registry(tmp_path: Path) -> None:
    etcd = FakeEtcd()
    registry = Registry(etcd, PREFIX)
    registry.start([record("compute0")])
    feed = DnsFeed(etcd, PREFIX, tmp_path, render, ready=lambda: registry.lease != 0)
    feed.start()
    try:
        registry.publish(record("compute7", ip="10.0.0.17"))
        _wait(lambda: (tmp_path / "compute7").exists())
        assert (tmp_path / "compute7").read_text() == "10.0.0.17 compute7.t compute7\n"
        registry.set_state("compute0", STOPPED)
        _wait(lambda: not (tmp_path / "compute0").exists())
        registry.withdraw("compute7")
        _wait(lambda: not (tmp_path / "compute7").exists())
    finally:
        feed.stop()
        registry.stop()


def test_dns_feed_keeps_the_directory_while_etcd_is_down(tmp_path: Path) -> None:
    etcd = FakeEtcd()
    (tmp_path / "compute0").write_text("kept\n")
    etcd.down = True
    feed = DnsFeed(etcd, PREFIX, tmp_path, render)
    with pytest.raises(RegistryUnavailableError):
        feed.sync()
    assert (tmp_path / "compute0").read_text() == "kept\n"


def _wait(cond: object, timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(cond) and cond():
            return
        time.sleep(0.01)
    raise AssertionError("condition not met in time")
