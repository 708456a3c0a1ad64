"""bench/multi_host_sim.py at its smallest: two namespace "hosts" joined by VXLAN carry
traffic between node namespaces, and the run removes every namespace it made."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.privileged

BENCH = Path(__file__).resolve().parents[2] / "bench" / "multi_host_sim.py"
PREFIX = "cgmt"  # not the bench's own cgmh: a bench run may be going on


def _ours() -> list[str]:
    return [n for n in os.listdir("/run/netns") if n.startswith(PREFIX)] \
        if os.path.isdir("/run/netns") else []


def test_vxlan_between_namespace_hosts_carries_traffic_and_leaves_nothing(
        tmp_path: Path) -> None:
    assert _ours() == []
    out = tmp_path / "sim.json"
    done = subprocess.run(
        [sys.executable, str(BENCH), "--prefix", PREFIX, "--rounds", "1", "--pings", "50",
         "--seconds", "0.2", "--out", str(out)],
        capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    for path in ("same_bridge", "across_vxlan", "underlay_host_to_host"):
        assert result["median"][path]["rtt_median_us"] > 0
        assert result["median"][path]["gbit_s"] > 0
    assert result["setup"]["node_mtu"] == 1450
    assert result["leftovers"] == []
    assert _ours() == []
