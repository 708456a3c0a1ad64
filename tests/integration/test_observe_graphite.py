"""Graphite push against a real carbon-cache (Debian graphite-carbon) on loopback.

carbon-cache runs from a private carbon.conf in a temporary directory with its own
storage; only the pid this test started is killed.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.helpers import free_port, listening, wait_for
from vhpc.observe.graphite import GraphiteClient
from vhpc.observe.samples import NodeSample, Rates, SlurmGauges

CARBON = shutil.which("carbon-cache") or "/usr/bin/carbon-cache"
pytestmark = pytest.mark.skipif(
    not os.path.exists(CARBON), reason="carbon-cache missing: apt-get install graphite-carbon"
)


class Carbon:
    """One private carbon-cache process."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.whisper = root / "storage" / "whisper"
        for d in ("storage/whisper", "log", "lists", "run"):
            (root / d).mkdir(parents=True, exist_ok=True)
        (root / "storage-schemas.conf").write_text(
            "[default]\npattern = .*\nretentions = 1s:1h\n")
        (root / "carbon.conf").write_text(f"""[cache]
STORAGE_DIR = {root}/storage/
LOCAL_DATA_DIR = {self.whisper}/
WHITELISTS_DIR = {root}/lists/
CONF_DIR = {root}/
LOG_DIR = {root}/log/
PID_DIR = {root}/run/
ENABLE_LOGROTATION = False
USER =
MAX_CACHE_SIZE = inf
MAX_UPDATES_PER_SECOND = 10000
MAX_CREATES_PER_MINUTE = inf
LINE_RECEIVER_INTERFACE = 127.0.0.1
LINE_RECEIVER_PORT = {self.port}
ENABLE_UDP_LISTENER = False
PICKLE_RECEIVER_INTERFACE = 127.0.0.1
PICKLE_RECEIVER_PORT = {free_port()}
CACHE_QUERY_INTERFACE = 127.0.0.1
CACHE_QUERY_PORT = {free_port()}
CARBON_METRIC_INTERVAL = 0
LOG_UPDATES = False
WHISPER_AUTOFLUSH = True
""")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [CARBON, f"--config={self.root}/carbon.conf", f"--logdir={self.root}/log",
             f"--pidfile={self.root}/run/carbon.pid", "--nodaemon", "start"],
            stdout=(self.root / "log" / "stdout").open("ab"), stderr=subprocess.STDOUT,
        )
        ok = wait_for(lambda: listening(self.port) or self.proc.poll() is not None, 30)
        if not ok or self.proc.poll() is not None:
            out = (self.root / "log" / "stdout").read_text(errors="replace")
            raise RuntimeError(f"carbon-cache did not start:\n{out[-3000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


@pytest.fixture
def carbon(tmp_path: Path) -> Iterator[Carbon]:
    c = Carbon(tmp_path / "carbon")
    c.start()
    try:
        yield c
    finally:
        c.stop()


def sample(node: str, ts: float) -> NodeSample:
    return NodeSample(node, ts, 50 << 20, 125 << 20, 60 << 20, 0, 0, 10**9, 3, 10, 20, 1, 2)


def test_pushed_metrics_become_whisper_files(carbon: Carbon) -> None:
    client = GraphiteClient(f"127.0.0.1:{carbon.port}", "vc")
    now = time.time()
    client.push([sample("compute1", now), sample("compute2", now)],
                {"compute1": Rates(12.5, 1.0, 2.0)},
                SlurmGauges({"idle": 2}, {"running": 1}, 4).as_series(), now)
    assert client.sender.flush(10)
    expected = [
        "vhpc/vc/compute1/memory/usage.wsp",
        "vhpc/vc/compute1/memory/limit.wsp",
        "vhpc/vc/compute1/cpu/percent.wsp",
        "vhpc/vc/compute2/network/rx_bytes.wsp",
        "vhpc/vc/slurm/nodes/idle.wsp",
        "vhpc/vc/slurm/jobs/running.wsp",
    ]
    assert wait_for(lambda: all((carbon.whisper / p).exists() for p in expected), 30), (
        sorted(str(p.relative_to(carbon.whisper)) for p in carbon.whisper.rglob("*.wsp")))

    fetch = shutil.which("whisper-fetch")
    if fetch:
        out = subprocess.run(
            [fetch, "--from", str(int(now) - 5), str(carbon.whisper / expected[0])],
            capture_output=True, text=True, check=True, timeout=30).stdout
        assert "52428800.0" in out, out

    # carbon restarts on the same port: the client reconnects by itself
    carbon.stop()
    client.push([sample("compute3", time.time())])
    carbon.start()
    client.push([sample("compute4", time.time())])
    new = [carbon.whisper / "vhpc/vc/compute3/memory/usage.wsp",
           carbon.whisper / "vhpc/vc/compute4/memory/usage.wsp"]
    assert wait_for(lambda: all(p.exists() for p in new), 60)
    assert client.sender.stats.connects >= 2
    client.close()
