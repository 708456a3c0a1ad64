"""Helpers the benchmarks share: run `vhpc` timed, a process's RSS, the median of runs.

The benches run as scripts (`.venv/bin/python bench/X.py`), so Python puts bench/ first
on sys.path and `from common import ...` finds this module.
"""

from __future__ import annotations

import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
VHPC = str(REPO / ".venv" / "bin" / "vhpc")
FLOOR_NAME = "../shared/bench/bare_boot.sh"  # the floor, named relative to the repo
FLOOR = str((REPO / FLOOR_NAME).resolve())


def timed_run(argv: list[str], timeout: float, env: dict[str, str] | None = None,
              cwd: str | None = None) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Run `argv` capturing its output; (wall seconds, completed process)."""
    t0 = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=cwd, check=False)
    return time.monotonic() - t0, proc


def vhpc_timed(cluster: str, *args: str, timeout: float
             ) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Run `vhpc -c CLUSTER ARGS`; (wall seconds, completed process)."""
    return timed_run([VHPC, "-c", cluster, *args], timeout)


def vhpc_stdout(cluster: str, *args: str, timeout: float) -> tuple[float, str]:
    """Run `vhpc -c CLUSTER ARGS`, exiting with its stderr on failure; (seconds, stdout)."""
    seconds, proc = vhpc_timed(cluster, *args, timeout=timeout)
    if proc.returncode != 0:
        raise SystemExit(f"vhpc {' '.join(args)} failed: {proc.stderr.strip()}")
    return seconds, proc.stdout


def rss_kb(pid: int) -> int:
    """VmRSS of `pid` in KB (0 if it is gone or a kernel thread)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def median_of(runs: list[dict[str, Any]], key: str) -> float | None:
    """Median of `key` over the runs that have it and did not fail (None if none did)."""
    vals = [r[key] for r in runs if key in r and "error" not in r]
    return round(statistics.median(vals), 3) if vals else None


def run_floor(n: int, timeout: float) -> dict[str, Any]:
    """One run of the floor, bare_boot.sh N, whose last line is
    '<N> <boot_s> <rss>KB idle=<k>'."""
    proc = subprocess.run(["bash", FLOOR, str(n)], capture_output=True, text=True,
                          timeout=timeout, check=False)
    last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    fields = last.split()
    try:
        idle = int(fields[3].removeprefix("idle="))
        return {"boot_s": float(fields[1]), "rss_per_slurmd_kb": int(fields[2].rstrip("KB")),
                "idle": idle, "ok": idle == n}
    except (IndexError, ValueError):
        return {"error": (last + proc.stderr)[-1000:]}


def run_srun(cluster: str, n: int, timeout: float) -> dict[str, Any]:
    """`srun -N n hostname` as the cluster user in the controller node: wall time, and
    whether all n nodes answered with distinct hostnames."""
    t, proc = vhpc_timed(cluster, "exec", "slurm", "--user", "cluser", "--", "srun",
                         f"-N{n}", "hostname", timeout=timeout)
    names = proc.stdout.split()
    return {"seconds": round(t, 3), "returncode": proc.returncode, "lines": len(names),
            "distinct_hostnames": len(set(names)), "ok": len(set(names)) == n,
            "stderr": proc.stderr.strip()[-500:]}
