"""HttpEtcd against a real etcd on loopback: it turns client auth on by itself, writes as
root, and leaves nobody else able to write (no cluster needed, no root needed)."""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.helpers import free_port, wait_for
from vhpc.cluster.etcd_client import HttpEtcd, RegistryUnavailableError
from vhpc.services import etcd as etcd_service

pytestmark = pytest.mark.skipif(shutil.which("etcd") is None, reason="needs etcd")


@pytest.fixture
def etcd_url(tmp_path: Path) -> Iterator[str]:
    client, peer = free_port(), free_port()
    url = f"http://127.0.0.1:{client}"
    proc = subprocess.Popen(
        ["etcd", "--name=t", f"--data-dir={tmp_path / 'data'}",
         f"--listen-client-urls={url}", f"--advertise-client-urls={url}",
         f"--listen-peer-urls=http://127.0.0.1:{peer}",
         f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
         f"--initial-cluster=t=http://127.0.0.1:{peer}", "--bcrypt-cost=4",
         "--heartbeat-interval=20", "--election-timeout=200"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_for(HttpEtcd(url).healthy, 30)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_only_the_root_password_writes_and_readers_read(etcd_url: str) -> None:
    anyone = HttpEtcd(etcd_url)
    # someone reached etcd before auth was on and made themselves an admin
    anyone._raw("/v3/auth/user/add", {"name": "evil", "password": "x"})
    anyone._raw("/v3/auth/role/add", {"name": "root"})
    anyone._raw("/v3/auth/user/grant", {"user": "evil", "role": "root"})
    anyone.put("/vhpc/t/nodes/forged", "10.66.66.66")  # and wrote a node record


    manager = HttpEtcd(etcd_url, root_password="s3cret")
    manager.put("/vhpc/t/nodes/n0", "real")  # turns auth on first
    assert manager.get_prefix("/vhpc/t/nodes/")[0] == {"/vhpc/t/nodes/n0": "real"}

    with pytest.raises(RegistryUnavailableError, match="user name is empty"):
        anyone.put("/vhpc/t/nodes/n0", "forged")
    for name, password in (("evil", "x"), (etcd_service.READER_USER,
                                           etcd_service.READER_PASSWORD)):
        login = anyone._raw("/v3/auth/authenticate", {"name": name, "password": password})
        if name == "evil":
            assert login.status_code >= 400  # removed when auth was turned on
            continue
        token = {"Authorization": login.json()["token"]}
        read = anyone._raw("/v3/kv/range", {"key": "L3ZocGMvdC9ub2Rlcy9uMA=="}, token)
        assert read.status_code == 200 and read.json()["kvs"]
        write = anyone._raw("/v3/kv/put", {"key": "L3ZocGMvdC9ub2Rlcy9uMA==",
                                            "value": "Zm9yZ2Vk"}, token)
        assert write.status_code >= 400 and "permission denied" in write.text
    assert manager.get_prefix("/vhpc/t/nodes/")[0] == {"/vhpc/t/nodes/n0": "real"}


def test_an_expired_token_logs_in_again_and_a_watch_follows(etcd_url: str) -> None:
    manager = HttpEtcd(etcd_url, root_password="s3cret", watch_poll=1.0)
    manager.put("/vhpc/t/nodes/n0", "1")
    manager._token = "expired.1"  # as after an etcd restart
    manager.put("/vhpc/t/nodes/n0", "2")
    _, revision = manager.get_prefix("/vhpc/t/nodes/")
    stop = threading.Event()
    seen: list[int] = []

    def follow() -> None:
        for rev in manager.watch("/vhpc/t/nodes/", revision + 1, stop):
            seen.append(rev)
            stop.set()

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    manager.put("/vhpc/t/nodes/n1", "3")
    thread.join(timeout=15)
    assert seen and seen[0] > revision
