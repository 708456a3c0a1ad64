"""The load generator against a 64-node cluster (issue 15): the jobs/s it sustains, and
what slurmctld spends on them.

Boots `-n 64 --memory 64M --overcommit` (cluster `hobench`, with two users besides
cluser), then runs `vhpc load` through the Python runner (the same code as the CLI):

- a burst: `--count N` as fast as the submitter goes (4 sbatch at once, each an nsenter
  into the controller plus a munge round trip): the most jobs/s sbatch accepts;
- steady rates (Poisson) for a fixed time each: whether submissions keep up with the rate
  and the queue drains (p50/p90 wait), i.e. the rate the cluster sustains.

Jobs are `sleep` of 0.5 s on average (exponential), 1..64 nodes in powers of two. For
every run: slurmctld's CPU (utime+stime from /proc/PID/stat, its pid from the cluster's
ledger) over the run, as seconds and as a share of one core. Results:
bench/results/load.json. Run as root (heavy: about three minutes on 2 cores):

    .venv/bin/python bench/load.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from vhpc.cluster.ledger import Kind, Ledger
from vhpc.load_runner import LoadRunner
from vhpc.spec.paths import ClusterPaths
from vhpc.workloads.load import LoadOptions

REPO = Path(__file__).resolve().parent.parent
CLUSTER = "hobench"
TICKS = os.sysconf("SC_CLK_TCK")
#: a rate is sustained when submissions keep to their schedule (p90 lag) and the queue
#: does not grow (p90 wait, in Slurm's whole seconds; sched_interval is 2 s)
LAG_OK = 1.0
WAIT_OK = 5.0


def vhpc(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """`vhpc -c CLUSTER ARGS`, failing loudly."""
    return subprocess.run([sys.executable, "-m", "vhpc.cli", "-c", CLUSTER, *args],
                          capture_output=True, text=True, timeout=timeout, check=True)


def slurmctld_pid() -> int:
    """slurmctld's host pid, from the cluster's ledger."""
    entries = Ledger(ClusterPaths.of(CLUSTER).ledger).entries(Kind.PROCESS)
    return next(int(e.data["pid"]) for e in entries if e.ident.startswith("slurmctld@"))


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # fields 14 and 15 of stat


def measure(label: str, options: LoadOptions) -> dict[str, Any]:
    """One load run: the report's numbers and slurmctld's CPU over it."""
    runner = LoadRunner(CLUSTER, options, wait_timeout=600)
    pid = slurmctld_pid()
    cpu0, t0 = cpu_seconds(pid), time.monotonic()
    report = runner.run()
    cpu1, wall = cpu_seconds(pid), time.monotonic() - t0
    total = report.total
    row = {
        "label": label, "asked_rate": options.rate, "count": options.count,
        "duration": options.duration, "jobs": total.submitted, "refused": report.refused,
        "completed": total.completed, "failed": total.failed,
        "submit_rate": report.submit_rate,
        "submit_lag_p90": report.submit_lag_p90,
        "throughput": total.throughput, "wait_p50": total.wait_p50,
        "wait_p90": total.wait_p90, "wait_p99": total.wait_p99,
        "utilisation": total.utilisation, "seconds": round(wall, 1),
        "slurmctld_cpu_s": round(cpu1 - cpu0, 2),
        "slurmctld_cpu_percent": round(100 * (cpu1 - cpu0) / wall, 1),
        "slurmctld_cpu_ms_per_job": round(1000 * (cpu1 - cpu0) / max(total.submitted, 1), 1),
    }
    print(json.dumps(row), file=sys.stderr)
    return row


def main() -> None:
    """Boot, run the burst and the steady rates, write the results, tear down."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=64)
    parser.add_argument("--burst", type=int, default=200, help="jobs in the burst")
    parser.add_argument("--rates", default="2,5,7,10", help="steady rates, jobs/s")
    parser.add_argument("--seconds", type=float, default=20.0, help="per steady rate")
    args = parser.parse_args()
    subprocess.run([sys.executable, "-m", "vhpc.cli", "-c", CLUSTER, "clean", "--force"],
                   capture_output=True, check=False)
    t0 = time.monotonic()
    vhpc("up", "-n", str(args.nodes), "--memory", "64M", "--overcommit",
         "--users", "alice:physics,bob:chem")
    boot = time.monotonic() - t0
    runs = []
    try:
        runs.append(measure("burst", LoadOptions(seed=1, count=args.burst,
                                                 mean_runtime=0.5)))
        for rate in (float(r) for r in args.rates.split(",")):
            runs.append(measure(f"rate {rate:g}/s", LoadOptions(
                seed=2, rate=rate, duration=args.seconds, mean_runtime=0.5)))
    finally:
        vhpc("down")
    steady = [r for r in runs if r["asked_rate"] and r["submit_lag_p90"] is not None
              and r["submit_lag_p90"] <= LAG_OK and r["wait_p90"] is not None
              and r["wait_p90"] <= WAIT_OK and r["completed"] == r["jobs"]]
    result = {
        "cluster": {"nodes": args.nodes, "memory": "64M", "overcommit": True,
                    "boot_s": round(boot, 1)},
        "runs": runs,
        "burst_submit_rate": runs[0]["submit_rate"],
        "sustained_when": f"submission lag p90 <= {LAG_OK:g} s, wait p90 <= {WAIT_OK:g} s, "
                          "every job completed",
        "sustained_rate": max((r["asked_rate"] for r in steady), default=None),
        "machine": {"cpus": os.cpu_count(), "kernel": platform.release(),
                    "date": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())},
    }
    out = REPO / "bench" / "results" / "load.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
