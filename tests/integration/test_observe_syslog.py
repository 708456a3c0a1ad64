"""Syslog forwarding against a real rsyslogd (Debian rsyslog) on loopback.

rsyslogd runs in the foreground from a private config in a temporary directory (imtcp on
a free port, everything written to one file there); only its pid is killed.
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
from vhpc.observe.log_store import LogRecord
from vhpc.observe.syslog_forward import SyslogForwarder

RSYSLOGD = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
pytestmark = pytest.mark.skipif(
    not os.path.exists(RSYSLOGD), reason="rsyslogd missing: apt-get install rsyslog"
)


@pytest.fixture
def rsyslog(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    port = free_port()
    out = tmp_path / "received.log"
    (tmp_path / "work").mkdir()
    conf = tmp_path / "rsyslog.conf"
    conf.write_text(f"""
global(workDirectory="{tmp_path}/work")
module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="{port}")
template(name="fields" type="string"
  string="%hostname%|%app-name%|%syslogseverity-text%|%structured-data%|%msg%\\n")
*.* action(type="omfile" file="{out}" template="fields")
""")
    proc = subprocess.Popen(
        [RSYSLOGD, "-n", "-f", str(conf), "-i", str(tmp_path / "rsyslogd.pid")],
        stdout=(tmp_path / "stdout").open("wb"), stderr=subprocess.STDOUT,
    )
    try:
        if not wait_for(lambda: listening(port) or proc.poll() is not None, 20) or (
            proc.poll() is not None
        ):
            raise RuntimeError("rsyslogd did not start: " + (tmp_path / "stdout").read_text())
        yield port, out
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def test_messages_arrive_with_hostname_and_app_name(rsyslog: tuple[int, Path]) -> None:
    port, out = rsyslog
    fwd = SyslogForwarder(f"127.0.0.1:{port}", "vc")
    now = time.time()
    fwd.forward([
        LogRecord(now, "compute1", "slurmd", "error", "Unable to register with slurm"),
        LogRecord(now, "slurm", "slurmctld", "info", "multi\nline with ] and \" quotes"),
        LogRecord(now, "compute2", "job", "warning", "héllo wörld"),
    ])
    fwd.forward([LogRecord(now, "", "vhpc", "info", "node compute3 added")])
    assert fwd.sender.flush(10)
    assert wait_for(lambda: out.exists() and out.read_text().count("\n") >= 4, 20)
    lines = [line.split("|", 4) for line in out.read_text().splitlines()]
    got = [(h, a, sev, msg.strip()) for h, a, sev, _sd, msg in lines]
    assert got == [
        ("compute1", "slurmd", "err", "Unable to register with slurm"),
        ("slurm", "slurmctld", "info", 'multi line with ] and " quotes'),
        ("compute2", "job", "warning", "héllo wörld"),
        ("vc", "vhpc", "info", "node compute3 added"),
    ]
    assert all(sd == '[vhpc@32473 cluster="vc"]' for _h, _a, _s, sd, _m in lines)
    fwd.close()
