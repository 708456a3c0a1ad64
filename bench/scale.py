"""Scale benchmark (issue 12 items 1 and 6): 256, 512 and 1024 compute nodes.

For each N, in one run and side by side:

- vhpc: wall time of the whole `vhpc -c snscale up -n N --memory 64M --overcommit`
  command (it returns when every node is idle), `srun -N<N> hostname` from the controller
  (time, distinct hostnames), the manager's RSS, each idle compute node's memory beyond
  its slurmd (the RSS of the node's other processes, and the node cgroup's usage over
  slurmd's RSS; the cgroup is charged only for pages the node touched first, so it can
  be below slurmd's RSS, which counts shared library pages), what the host's
  MemAvailable lost per compute node, and the wall time of `vhpc down`;
- the floor: `../shared/bench/bare_boot.sh N` (boot time and RSS per slurmd).

Result: bench/results/scale.json. Run as root on a quiet host (it takes ~15 minutes):

    .venv/bin/python bench/scale.py                  # N = 256 512 1024
    .venv/bin/python bench/scale.py -n 256 --out /tmp/scale.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from common import FLOOR_NAME, REPO, rss_kb, run_floor, run_srun, vhpc_timed

CLUSTER = "snscale"
STATE = Path("/var/lib/vhpc") / CLUSTER
DEFAULT_NS = (256, 512, 1024)
TIMEOUT = 1800.0


def vhpc(*args: str, timeout: float = TIMEOUT) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Run `vhpc -c snscale ARGS`; (wall seconds, completed process)."""
    return vhpc_timed(CLUSTER, *args, timeout=timeout)


def comm(pid: int) -> str:
    """A process's command name ("" if it is gone)."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def node_overhead(status: dict[str, Any]) -> dict[str, Any]:
    """Per idle compute node: slurmd's RSS, the other processes' RSS, the cgroup's usage."""
    slurmd, others, usage = [], [], []
    for node in (n for n in status["nodes"] if n["role"] == "compute"):
        rss = {pid: rss_kb(pid) for pid in node["pids"]}
        own = sum(kb for pid, kb in rss.items() if comm(pid) == "slurmd")
        slurmd.append(own)
        others.append(sum(rss.values()) - own)
        usage.append(int(node["memory_usage"]) // 1024 - own)
    return {
        "slurmd_rss_kb_median": int(statistics.median(slurmd)),
        "other_processes_rss_kb_median": int(statistics.median(others)),
        "cgroup_usage_over_slurmd_kb_median": int(statistics.median(usage)),
        "cgroup_usage_over_slurmd_kb_max": max(usage),
    }


def manager_rss_kb() -> int:
    """RSS of the cluster's manager process (0 if unknown)."""
    try:
        return rss_kb(int((STATE / "run" / "manager.pid").read_text().split()[0]))
    except (OSError, ValueError, IndexError):
        return 0



def run_vhpc(n: int, sruns: int) -> dict[str, Any]:
    """One vhpc cluster of N nodes: boot, sruns, memory, down."""
    result: dict[str, Any] = {}
    available_before = _meminfo_kb("MemAvailable")
    try:
        boot_s, up = vhpc("up", "-n", str(n), "--memory", "64M", "--overcommit")
        result["boot_s"] = round(boot_s, 2)
        if up.returncode != 0:
            result["error"] = (up.stderr or up.stdout).strip()[-1000:]
            return result
        result["manager_rss_kb_idle"] = manager_rss_kb()
        # everything the cluster costs the host (kernel objects included), per compute node
        result["host_memory_kb_per_node"] = (available_before
                                             - _meminfo_kb("MemAvailable")) // n
        _, st = vhpc("status", "--json", timeout=300)
        result.update(node_overhead(json.loads(st.stdout)))
        result["srun"] = [run_srun(CLUSTER, n, 900) for _ in range(sruns)]
        result["manager_rss_kb_after_sruns"] = manager_rss_kb()
    finally:
        down_s, down = vhpc("down", timeout=900)
        result["down_s"] = round(down_s, 2)
        if down.returncode != 0:
            result["down_error"] = down.stderr.strip()[-500:]
    return result




def main() -> None:
    """Parse options, run each N (vhpc, then the floor), write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, action="append", help="node counts (repeatable)")
    ap.add_argument("--sruns", type=int, default=2, help="srun -N<all> runs per cluster")
    ap.add_argument("--no-floor", action="store_true", help="skip bare_boot.sh")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "scale.json"))
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench/scale.py boots clusters: run it as root")
    results = []
    for n in args.n or DEFAULT_NS:
        row: dict[str, Any] = {"n": n, "vhpc": run_vhpc(n, args.sruns)}
        print(f"N={n} vhpc: {row['vhpc']}", file=sys.stderr, flush=True)
        if not args.no_floor:
            row["floor"] = run_floor(n, TIMEOUT)
            print(f"N={n} floor: {row['floor']}", file=sys.stderr, flush=True)
        results.append(row)
    doc = {
        "bench": "scale",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "host": {"cpus": os.cpu_count(), "kernel": platform.release(),
                 "mem_total_kb": _meminfo_kb("MemTotal"), "load_before": os.getloadavg()},
        "floor": FLOOR_NAME,
        "command": "vhpc up -n N --memory 64M --overcommit; srun -N N hostname; vhpc down",
        "results": results,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(doc, indent=1) + "\n")
    print(json.dumps(doc, indent=1))


def _meminfo_kb(field: str) -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


if __name__ == "__main__":
    main()
