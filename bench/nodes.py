"""Dynamic-node benchmark (issue 3): `vhpc node add` to idle, and the cost of the loops.

Boots cluster `t3bench` with 4 nodes, then measures (medians over repeats):

- add_1_s: wall time of `vhpc node add NAME` (the command returns when the node is idle
  in Slurm *and* its name is in DNS), checked with a `sinfo` afterwards; then `node rm`;
- add_64_s: wall time of `vhpc node add --count 64` (one command), same guarantees;
- rm_64_s: wall time of `vhpc node rm` of those 64;
- manager cost at 4 and at 68 compute nodes over `--idle` seconds with no change: CPU %
  of the manager process (utime+stime from /proc/<pid>/stat; it runs the registry lease,
  DNS watch and node health loops, plus the API and supervision) and its RSS; etcd's RSS.

Result: bench/results/nodes.json. Run as root:  .venv/bin/python bench/nodes.py
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from common import REPO, VHPC, vhpc_stdout

CLUSTER = "t3bench"
STATE = Path("/var/lib/vhpc") / CLUSTER
TICK = os.sysconf("SC_CLK_TCK")


def vhpc(*args: str, timeout: float = 600.0) -> tuple[float, str]:
    """Run `vhpc -c t3bench ARGS`; (wall seconds, stdout); raise on failure."""
    return vhpc_stdout(CLUSTER, *args, timeout=timeout)


def idle_nodes() -> set[str]:
    """Compute nodes idle in sinfo."""
    _, out = vhpc("exec", "slurm", "--", "sinfo", "-h", "-N", "-t", "idle", "-o", "%N")
    return set(out.split())


def cpu_ticks(pid: int) -> int:
    """utime + stime of a process, in clock ticks."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def rss_mib(pid: int) -> float:
    """VmRSS of a process in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def manager_cost(seconds: float) -> dict[str, Any]:
    """CPU % and RSS of the manager (and etcd's RSS) over an idle period."""
    pid = int((STATE / "run" / "manager.pid").read_text())
    _, out = vhpc("status", "--json")
    dns = next(n for n in json.loads(out)["nodes"] if n["name"] == "dns")
    etcd_pid = next(d["pid"] for d in dns["services"] if d["name"] == "etcd")
    before, t0 = cpu_ticks(pid), time.monotonic()
    time.sleep(seconds)
    used = (cpu_ticks(pid) - before) / TICK
    return {"manager_cpu_percent": round(100 * used / (time.monotonic() - t0), 2),
            "manager_rss_mib": rss_mib(pid), "etcd_rss_mib": rss_mib(etcd_pid),
            "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-r", "--repeats", type=int, default=3)
    parser.add_argument("--idle", type=float, default=20.0)
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "nodes.json"))
    args = parser.parse_args()
    subprocess.run([VHPC, "-c", CLUSTER, "down"], capture_output=True, check=False)
    vhpc("up", "-n", "4")
    try:
        results: dict[str, Any] = {"cost_4": manager_cost(args.idle)}
        one = []
        for i in range(args.repeats):
            name = f"extra{i}"
            seconds, _ = vhpc("node", "add", name)
            assert name in idle_nodes(), f"{name} not idle after node add"
            one.append(seconds)
            vhpc("node", "rm", name)
        many, removal = [], []
        for _ in range(max(1, args.repeats - 1)):
            seconds, out = vhpc("node", "add", "--count", "64", "--json")
            names = [r["name"] for r in json.loads(out)]
            assert set(names) <= idle_nodes(), "not every added node is idle"
            many.append(seconds)
            cost = manager_cost(args.idle)
            t, _ = vhpc("node", "rm", *names)
            removal.append(t)
        results |= {
            "add_1_s": {"median": round(statistics.median(one), 3), "runs": one},
            "add_64_s": {"median": round(statistics.median(many), 3), "runs": many},
            "rm_64_s": {"median": round(statistics.median(removal), 3), "runs": removal},
            "cost_68": cost,
        }
    finally:
        subprocess.run([VHPC, "-c", CLUSTER, "down"], capture_output=True, check=False)
    results["machine"] = {"cpus": os.cpu_count(), "kernel": platform.release(),
                          "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    results["targets"] = {"add_1_s": 1.0, "add_64_s": 10.0}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
