"""Cost of the observer: sampler + log collector at 64 fake nodes, 5 s interval.

Nodes are directories laid out like cgroup v1 plus a fake /sys/class/net (see
vhpc.observe.fakefs). A child process plays the cluster: it changes every node's
counters each second and appends log lines (default 2 per node per second) to one
slurmd log per node, so only the observer's own work is counted in this process.

Reports CPU % of one core and RSS of the observer's process during a steady run, the
time of one sampling round, and the log ingest rate of a burst. Writes
bench/results/observe.json.

    .venv/bin/python bench/observe.py [--nodes 64] [--interval 5] [--duration 60]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from vhpc.observe import Observer
from vhpc.observe.fakefs import fake_cluster

RESULTS = Path(__file__).parent / "results" / "observe.json"

CHURN = r"""
import sys, time, random
from pathlib import Path
root, n, rate = Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
rnd = random.Random(1)
cpu = [0] * (n + 1)
tick = 0
while True:
    tick += 1
    for i in range(1, n + 1):
        name = f"compute{i}"
        cpu[i] += rnd.randint(10**7, 10**9)
        (root / "cgroup/memory/vhpc" / name / "memory.usage_in_bytes").write_text(
            f"{rnd.randint(10, 120) << 20}\n")
        (root / "cgroup/cpuacct/vhpc" / name / "cpuacct.usage").write_text(f"{cpu[i]}\n")
        (root / "net" / f"vh{i}" / "statistics/rx_bytes").write_text(f"{tick * 5000}\n")
        with open(root / "log" / f"slurmd.{name}.log", "a") as f:
            for k in range(int(rate) + (rnd.random() < rate % 1)):
                f.write(f"[2026-11-28T15:00:{tick % 60:02d}.000] debug: tick {tick} rpc {k} "
                        f"REQUEST_PING from {name}\n")
    time.sleep(1.0)
"""


def rss_kb(field: str = "VmRSS") -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=64)
    ap.add_argument("--interval", type=float, default=5.0)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--lines-per-node", type=float, default=2.0, help="log lines/s per node")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()

    baseline_rss = rss_kb()
    with tempfile.TemporaryDirectory(prefix="vhpc-bench-observe-") as tmp:
        root = Path(tmp)
        nodes = fake_cluster(root, args.nodes)
        obs = Observer(root / "state", "bench", lambda: nodes, interval=args.interval,
                       net_root=root / "net")

        # 1. one sampling round, measured directly
        ticks = []
        for _ in range(20):
            t0 = time.perf_counter()
            obs.tick()
            ticks.append((time.perf_counter() - t0) * 1000)
        obs.metrics_store.flush()

        # 2. steady state: threads running, the cluster churning in another process
        churn = subprocess.Popen([sys.executable, "-c", CHURN, str(root), str(args.nodes),
                                  str(args.lines_per_node)])
        try:
            obs.start()
            time.sleep(2.0)  # let the first round and file opening pass
            lines0, c0, w0 = obs.log_store.last_id(), cpu_seconds(), time.monotonic()
            time.sleep(args.duration)
            c1, w1, lines1 = cpu_seconds(), time.monotonic(), obs.log_store.last_id()
            rss_steady = rss_kb()
        finally:
            churn.terminate()
            churn.wait(10)
        obs.stop()

        obs2 = Observer(root / "state", "bench", lambda: nodes, interval=args.interval,
                        net_root=root / "net")
        obs2.tick()

        # 3. log burst, 100k lines over the nodes' files (a fresh observer, no threads)
        per = 100_000 // args.nodes
        for h in nodes:
            log = h.log_files["slurmd"]
            assert isinstance(log, Path)  # fake_cluster: one file per service
            with log.open("a") as f:
                f.writelines(f"[2026-11-28T15:00:00.000] error: burst line {i} on {h.name}\n"
                             for i in range(per))
        t0 = time.perf_counter()
        burst = n = obs2.poll_logs()
        while n:
            n = obs2.poll_logs()
            burst += n
        obs2.log_store.flush()
        burst_s = time.perf_counter() - t0
        obs2.stop()
        db_sizes = {p.name: p.stat().st_size for p in (root / "state").iterdir()}

    result = {
        "nodes": args.nodes,
        "interval_s": args.interval,
        "duration_s": args.duration,
        "log_lines_per_node_per_s": args.lines_per_node,
        "cpu_percent_of_one_core": round((c1 - c0) / (w1 - w0) * 100, 2),
        "rss_mb_steady": round(rss_steady / 1024, 1),
        "rss_peak_mb": round(rss_kb("VmHWM") / 1024, 1),
        "rss_python_baseline_mb": round(baseline_rss / 1024, 1),
        "tick_ms_mean": round(statistics.mean(ticks), 2),
        "tick_ms_p95": round(sorted(ticks)[int(len(ticks) * 0.95) - 1], 2),
        "log_lines_ingested_steady": lines1 - lines0,
        "log_lines_per_s_steady": round((lines1 - lines0) / (w1 - w0), 1),
        "log_burst_lines": burst,
        "log_burst_lines_per_s": round(burst / burst_s),
        "db_bytes": db_sizes,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "cpus": os.cpu_count(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
