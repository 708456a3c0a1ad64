"""Benchmark of the block GEMM workload: GFLOPS and per-rank peak memory.

Modes (results merge into bench/results/gemm.json, one key per mode):
  --host     mpirun on this host, ranks pinned with --bind-to core, 1, 2 and 4 ranks,
             side by side with a single-process numpy matmul (2 BLAS threads, and 1).
  --memory   per-rank peak RSS for N in 1024..8192 at 1, 2, 4 ranks, next to the model
             of gemm_core.estimate_rank_bytes (the table in docs/gemm.md).
  --cluster  the same runs inside a vhpc cluster through the CLI (vhpc up / exec / down).

    .venv/bin/python bench/gemm.py --host
    .venv/bin/python bench/gemm.py --memory
    .venv/bin/python bench/gemm.py --cluster            # needs root: boots 'gemmbench'

OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are removed from the environment of both sides
(if set) so the MPI ranks and numpy run the same BLAS kernels.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BIN = REPO / "src" / "vhpc" / "workloads" / "bin"
PROGRAM = BIN / "gemm_block_mpi"
JOB_PYTHON = Path("/opt/vhpc/venv/bin/python")
RESULTS = REPO / "bench" / "results" / "gemm.json"
VHPC = REPO / ".venv" / "bin" / "vhpc"
CORES = os.cpu_count() or 1

NUMPY_SNIPPET = """
import sys, time, numpy as np
n, reps, dtype = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
rng = np.random.default_rng(1)
a = rng.uniform(-1, 1, (n, n)).astype(dtype)
b = rng.uniform(-1, 1, (n, n)).astype(dtype)
a @ b
best = float("inf")
for _ in range(reps):
    t0 = time.perf_counter()
    a @ b
    best = min(best, time.perf_counter() - t0)
print(2.0 * n ** 3 / best / 1e9)
"""
MODEL_SNIPPET = """
import sys
sys.path.insert(0, sys.argv[1])
import gemm_core
n, p, q, width = (int(v) for v in sys.argv[2:6])
print(gemm_core.estimate_rank_bytes(n, (p, q), width, sys.argv[6]))
"""


def reps_for(n: int, reps: int) -> int:
    """More repetitions for small N (best-of on a shared machine): up to 16 at N=1024."""
    return max(reps, min(16, (4096 // max(n, 1)) ** 3))


def bench_env(threads: int | None = None) -> dict[str, str]:
    """The environment of both sides: same BLAS kernels, explicit thread count."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_NUM_THREADS")}
    env.pop("OPENBLAS_NUM_THREADS", None)
    if threads is not None:
        env["OPENBLAS_NUM_THREADS"] = str(threads)
    return env


def run(cmd: list[str], env: dict[str, str] | None = None, timeout: float = 900) -> str:
    """Run a command; its stdout, or SystemExit with its stderr on failure."""
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout,
                          check=False)
    if proc.returncode != 0:
        raise SystemExit(f"bench: {' '.join(cmd)} exited {proc.returncode}\n"
                         f"{proc.stderr[-2000:]}")
    return proc.stdout


def numpy_gflops(n: int, threads: int, reps: int, dtype: str) -> float:
    """GFLOPS of one numpy matmul process with ``threads`` BLAS threads (best of reps)."""
    out = run([str(JOB_PYTHON), "-c", NUMPY_SNIPPET, str(n), str(reps), dtype],
              env=bench_env(threads))
    return float(out.strip().splitlines()[-1])


def mpirun_gemm(n: int, ranks: int, reps: int, dtype: str, extra: list[str]) -> dict[str, Any]:
    """One gemm_block_mpi run on the host under mpirun; its JSON report."""
    bind = "core" if ranks <= CORES else "core:overload-allowed"
    cmd = ["mpirun", "--allow-run-as-root", "--oversubscribe", "--bind-to", bind,
           "-np", str(ranks), str(JOB_PYTHON), str(PROGRAM), "-n", str(n), "--reps",
           str(reps), "--dtype", dtype, "--json", *extra]
    report: dict[str, Any] = json.loads(run(cmd, env=bench_env()).strip().splitlines()[-1])
    return report


def summarize(report: dict[str, Any]) -> dict[str, Any]:
    """The fields of a gemm_block_mpi report kept in the results file."""
    rss = [r["peak_rss_kib"] / 1024.0 for r in report["rank_info"]]
    return {"n": report["n"], "ranks": report["ranks"], "grid": report["grid"],
            "block": report["block"], "dtype": report["dtype"],
            "gflops": 2.0 * report["n"] ** 3 / report["best_time_s"] / 1e9,
            "gflops_mean": report["gflops"], "time_s": report["time_s"],
            "best_time_s": report["best_time_s"],
            "peak_rss_mib_max": max(rss), "peak_rss_mib": rss,
            "verification": report["verification"]}


def efficiency(rows: list[dict[str, Any]], numpy: dict[int, dict[str, float]]) -> None:
    """Add speedup, parallel efficiency and the ratio to numpy's 2-thread throughput.

    All GFLOPS are best-of-reps on both sides (numpy after one warm-up multiply).
    """
    one = {r["n"]: r["gflops"] for r in rows if r["ranks"] == 1}
    for r in rows:
        speedup = r["gflops"] / one[r["n"]] if r["n"] in one else float("nan")
        r["speedup"] = speedup
        r["efficiency"] = speedup / r["ranks"]
        r["efficiency_per_core"] = speedup / min(r["ranks"], CORES)
        r["vs_numpy_2threads"] = r["gflops"] / numpy[r["n"]]["threads_2"]


def host_mode(sizes: list[int], ranks: list[int], reps: int, dtype: str,
              block: int | None) -> dict[str, Any]:
    """Host benchmark: numpy (1 and 2 threads) and gemm_block_mpi at each rank count."""
    extra = ["--block", str(block)] if block else []
    rows: list[dict[str, Any]] = []
    numpy: dict[int, dict[str, float]] = {}
    for n in sizes:
        r = reps_for(n, reps)
        numpy[n] = {"threads_1": numpy_gflops(n, 1, r, dtype),
                    "threads_2": numpy_gflops(n, 2, r, dtype)}
        print(f"N={n:>5} numpy 1 thread {numpy[n]['threads_1']:6.1f}  "
              f"2 threads {numpy[n]['threads_2']:6.1f} GFLOPS", flush=True)
        for k in ranks:
            row = summarize(mpirun_gemm(n, k, r, dtype, extra))
            rows.append(row)
            print(f"N={n:>5} ranks {k} grid {row['grid'][0]}x{row['grid'][1]} "
                  f"{row['gflops']:6.1f} GFLOPS  peak RSS {row['peak_rss_mib_max']:.0f} MiB "
                  f"{row['verification']}", flush=True)
    efficiency(rows, numpy)
    return {"numpy": {str(n): v for n, v in numpy.items()}, "runs": rows}


def model_bytes(n: int, grid: list[int], width: int, dtype: str) -> int:
    """gemm_core.estimate_rank_bytes, evaluated by the job python (it has numpy)."""
    out = run([str(JOB_PYTHON), "-c", MODEL_SNIPPET, str(BIN), str(n), str(grid[0]),
               str(grid[1]), str(width), dtype])
    return int(out.strip())


def memory_mode(sizes: list[int], ranks: list[int], dtype: str) -> dict[str, Any]:
    """Peak RSS per rank against the model, one multiply each."""
    rows = []
    for n in sizes:
        for k in ranks:
            row = summarize(mpirun_gemm(n, k, 1, dtype, []))
            est = model_bytes(n, row["grid"], row["block"], dtype)
            row["model_mib"] = est / 2**20
            rows.append(row)
            print(f"N={n:>5} ranks {k} measured {row['peak_rss_mib_max']:7.1f} MiB  "
                  f"model {row['model_mib']:7.1f} MiB  {row['verification']}", flush=True)
    return {"runs": rows}


def spread_nodes(nodes: list[dict[str, Any]]) -> list[str]:
    """Compute nodes ordered so that the first ones sit on different host CPUs.

    Slurm does not know which host CPU a node is pinned to: `srun -N2` may pick two nodes
    on the same CPU, which measures time-sharing, not scaling.
    """
    compute = [n for n in nodes if n["role"] == "compute"]
    seen: set[str] = set()
    first: list[str] = []
    rest: list[str] = []
    for node in compute:
        (rest if node["cpuset"] in seen else first).append(node["name"])
        seen.add(node["cpuset"])
    return first + rest


def cluster_mode(sizes: list[int], ranks: list[int], reps: int, dtype: str,
                 name: str, nodes: int) -> dict[str, Any]:
    """The same runs inside a vhpc cluster: srun -N<k> from the slurm node, as cluser."""
    vhpc = [str(VHPC), "-c", name]
    as_cluser = [*vhpc, "exec", "slurm", "--user", "cluser", "--"]
    run([*vhpc, "up", "-n", str(nodes)], timeout=300)
    rows = []
    try:
        found = subprocess.run([*as_cluser, "sh", "-c", "command -v gemm_block_mpi"],
                               capture_output=True, text=True, check=False)
        program = found.stdout.strip() or str(PROGRAM)  # not installed yet: the repo's
        spread = spread_nodes(json.loads(run([*vhpc, "status", "--json"]))["nodes"])
        for n in sizes:
            for k in ranks:
                nodelist = ",".join(spread[:k])
                out = run([*as_cluser, "srun", f"-N{k}", "-w", nodelist, "-K", "--mpi=pmix",
                           program, "-n",
                           str(n), "--reps", str(reps_for(n, reps)), "--dtype", dtype,
                           "--json"])
                row = summarize(json.loads(out.strip().splitlines()[-1]))
                rows.append(row)
                print(f"N={n:>5} nodes {k} {row['gflops']:6.1f} GFLOPS  peak RSS "
                      f"{row['peak_rss_mib_max']:.0f} MiB {row['verification']}", flush=True)
    finally:
        run([*vhpc, "down"], timeout=300)
    numpy = {n: {"threads_1": numpy_gflops(n, 1, reps_for(n, reps), dtype),
                 "threads_2": numpy_gflops(n, 2, reps_for(n, reps), dtype)} for n in sizes}
    efficiency(rows, numpy)
    return {"numpy": {str(n): v for n, v in numpy.items()}, "runs": rows, "nodes": nodes,
            "node_order": spread}


def machine() -> dict[str, Any]:
    """Where the numbers come from."""
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"cpus": CORES, "cpu_model": model, "kernel": platform.release(),
            "removed_env": ["OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"]}


def save(mode: str, data: dict[str, Any]) -> None:
    """Merge this mode's results into bench/results/gemm.json."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    doc: dict[str, Any] = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    doc[mode] = {"when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": machine(), **data}
    tmp = RESULTS.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    tmp.replace(RESULTS)
    print(f"results: {RESULTS.relative_to(REPO)} [{mode}]")


def table(rows: list[dict[str, Any]]) -> None:
    """Print GFLOPS, efficiency and ratio to numpy side by side."""
    print(f"{'N':>6} {'ranks':>5} {'GFLOPS':>8} {'speedup':>8} {'eff':>6} {'eff/core':>8} "
          f"{'vs numpy 2t':>11}")
    for r in rows:
        print(f"{r['n']:>6} {r['ranks']:>5} {r['gflops']:>8.1f} {r['speedup']:>8.2f} "
              f"{r['efficiency']:>6.0%} {r['efficiency_per_core']:>8.0%} "
              f"{r['vs_numpy_2threads']:>11.0%}")


def main() -> int:
    """Parse the mode and run it."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--host", action="store_true")
    mode.add_argument("--memory", action="store_true")
    mode.add_argument("--cluster", action="store_true")
    ap.add_argument("--sizes", type=int, nargs="+")
    ap.add_argument("--ranks", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    ap.add_argument("--block", type=int, help="SUMMA panel width (default: the program's)")
    ap.add_argument("--name", default="gemmbench", help="cluster name for --cluster")
    ap.add_argument("--nodes", type=int, default=4, help="compute nodes for --cluster")
    args = ap.parse_args()
    for tool in ("mpirun",):
        if shutil.which(tool) is None or not JOB_PYTHON.exists():
            raise SystemExit(f"bench: needs {tool} and {JOB_PYTHON}")
    if args.memory:
        save("memory", memory_mode(args.sizes or [1024, 2048, 4096, 8192], args.ranks,
                                   args.dtype))
        return 0
    if args.host:
        data = host_mode(args.sizes or [1024, 2048, 4096], args.ranks, args.reps,
                         args.dtype, args.block)
        save("host", data)
    else:
        # 125M nodes: float64 N=1536 still fits on one node (docs/gemm.md)
        data = cluster_mode(args.sizes or [512, 1024, 1536], args.ranks, args.reps,
                            args.dtype, args.name, args.nodes)
        save("cluster", data)
    table(data["runs"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
