"""API latency of a real manager while a job runs (issue 5).

Boots a 4-node cluster `t5bench` (sampling every 1 s), starts a CPU+memory job on every
compute node, then times GET /api/v1/status and GET /api/v1/metrics over TCP (the
dashboard's path). Results are merged into bench/results/observe.json under "api".

    sudo .venv/bin/python bench/observe_api.py [--requests 200]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "observe.json"
CLUSTER = "t5bench"
VHPC = [sys.executable, "-m", "vhpc.cli", "-c", CLUSTER]
JOB = ("import time; b=bytearray(50*2**20); t=time.time()\n"
       "while time.time()-t < 120: sum(range(10000))")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(client: httpx.Client, path: str, n: int) -> dict[str, float]:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = client.get(path)
        times.append((time.perf_counter() - t0) * 1000)
        r.raise_for_status()
    return {"p50_ms": round(pct(times, 0.5), 2), "p99_ms": round(pct(times, 0.99), 2),
            "mean_ms": round(statistics.fmean(times), 2), "requests": n}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    subprocess.run([*VHPC, "down"], capture_output=True)
    subprocess.run([*VHPC, "up", "-n", "4", "--sample-interval", "1"], check=True,
                   capture_output=True)
    job = None
    try:
        job = subprocess.Popen([*VHPC, "exec", "slurm", "--user", "cluser", "--", "srun",
                                "-N4", "/opt/vhpc/venv/bin/python", "-c", JOB],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(5)  # job running, a few samples stored
        port = Path(f"/var/lib/vhpc/{CLUSTER}/run/dashboard.port").read_text().strip()
        token = Path(f"/var/lib/vhpc/{CLUSTER}/run/token").read_text().strip()
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10,
                          headers={"Authorization": f"Bearer {token}"}) as client:
            result = {
                "nodes": 4, "interval_s": 1.0, "job": "srun -N4 python busy loop + 50 MiB",
                "status": measure(client, "/api/v1/status", args.requests),
                "status_dashboard": measure(client, "/api/v1/status?max_age=10",
                                            args.requests),
                "metrics_memory_600s": measure(client, "/api/v1/metrics?metric=memory&since=600",
                                               args.requests),
                "metrics_prometheus": measure(client, "/metrics", args.requests),
                "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
            }
    finally:
        if job is not None:
            job.kill()
        subprocess.run([*VHPC, "down"], capture_output=True)
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    data["api"] = result
    RESULTS.write_text(json.dumps(data, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
