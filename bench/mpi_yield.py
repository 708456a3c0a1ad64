"""MPI on oversubscribed nodes (issue 12, part 3): ranks that yield vs ranks that spin.

Boots one cluster (`slmpi`): two 1-CPU compute nodes (pinned to different host CPUs) and
a third node with both CPUs (`node add --cpuset 0-1`). Then, side by side in
one run, each measurement repeated `--reps` times (median):

* mpi4py's ringtest (`python -m mpi4py.bench ringtest -l 100 -n 65536`) with 2 ranks and
  with 4 ranks (`--overcommit`) on 2 cores, in two layouts: one 2-CPU node (shared
  memory) and two 1-CPU nodes (TCP between them);
* the gemm workload (`gemm_block_mpi -n N`, one rank per 1-CPU node, `srun -N2`);

once with `OMPI_MCA_mpi_yield_when_idle=0` set in the job (Open MPI's own default: what
vhpc gave jobs before) and once with the node's default (vhpc's TaskProlog: 1). Goal:
the 4-rank ringtest within 3x of the 2-rank one with yield, gemm no slower.

    flock /work/notes/big.lock .venv/bin/python bench/mpi_yield.py
    .venv/bin/python bench/mpi_yield.py --reps 3 --gemm-n 1024

Result: bench/results/mpi_yield.json (or --out).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import statistics
from pathlib import Path
from typing import Any

from common import REPO, vhpc_stdout, vhpc_timed

NAME = "slmpi"
PYTHON = "/opt/vhpc/venv/bin/python"
RING = f"{PYTHON} -m mpi4py.bench ringtest -l 100 -n 65536"
RING_RE = re.compile(r"time for \d+ loops = ([0-9.eE+-]+) seconds")
VAR = "OMPI_MCA_mpi_yield_when_idle"
#: the two settings compared: Open MPI's default (spin) and the node's (vhpc: yield)
MODES = {"spin": f"{VAR}=0", "yield": f"env -u {VAR}"}
#: --mem-per-cpu: the cluster's default (DefMemPerCPU, the leanest node's memory per CPU:
#: 512M) would not fit two CPUs of the 512M 2-CPU node
LAYOUTS = {"one 2-CPU node": "-w compute2 -N1 --mem-per-cpu=200M",
           "two 1-CPU nodes": "-w compute[0-1] -N2 --mem-per-cpu=200M"}
#: 4 ranks on the layout's 2 cores: --overcommit allocates one task's CPUs per node, so
#: the 2-CPU node needs -c 2 (without it the 4 ranks share one core)
OVERCOMMIT = {"one 2-CPU node": "--overcommit -c 2", "two 1-CPU nodes": "--overcommit"}


def in_cluster(script: str, timeout: float = 600) -> str:
    """Run a shell line as the cluster user in the controller; its stdout."""
    return vhpc_stdout(NAME, "exec", "slurm", "--user", "cluser", "--", "bash", "-lc",
                       script, timeout=timeout)[1]


def ringtest(mode: str, layout: str, ranks: int) -> float:
    """Seconds of one ringtest run (rank 0's report)."""
    over = f" {OVERCOMMIT[layout]}" if ranks > 2 else ""
    out = in_cluster(f"{MODES[mode]} srun {LAYOUTS[layout]} -n{ranks}{over} --mpi=pmix {RING}")
    found = RING_RE.search(out)
    if found is None:
        raise SystemExit(f"ringtest printed no time: {out[-500:]}")
    return float(found.group(1))


def gemm(mode: str, n: int) -> float:
    """GFLOPS (best multiply) of gemm_block_mpi on the two 1-CPU nodes."""
    out = in_cluster(f"{MODES[mode]} srun {LAYOUTS['two 1-CPU nodes']} --mpi=pmix "
                     f"gemm_block_mpi -n {n} --reps 3 --json")
    report = json.loads(out.strip().splitlines()[-1])
    return float(2.0 * n ** 3 / report["best_time_s"] / 1e9)


def median(values: list[float]) -> float:
    """Median, rounded for the results file."""
    return round(statistics.median(values), 5)


def measure(reps: int, gemm_n: int) -> dict[str, Any]:
    """Every measurement, interleaved (spin, yield, spin, ...) so drift hits both alike."""
    ring: dict[str, dict[str, dict[str, list[float]]]] = {
        layout: {mode: {"2": [], "4": []} for mode in MODES} for layout in LAYOUTS}
    flops: dict[str, list[float]] = {mode: [] for mode in MODES}
    for rep in range(reps):
        for layout in LAYOUTS:
            for mode in MODES:
                for ranks in (2, 4):
                    ring[layout][mode][str(ranks)].append(ringtest(mode, layout, ranks))
        for mode in MODES:
            flops[mode].append(gemm(mode, gemm_n))
        print(f"rep {rep + 1}/{reps} done", flush=True)
    rings: dict[str, dict[str, dict[str, Any]]] = {}
    for layout, modes in ring.items():
        rings[layout] = {}
        for mode, runs in modes.items():
            two, four = median(runs["2"]), median(runs["4"])
            rings[layout][mode] = {"ranks_2_s": two, "ranks_4_s": four,
                                   "ratio_4_to_2": round(four / two, 2), "runs": runs}
    gflops = {mode: median(v) for mode, v in flops.items()}
    gemms = {mode: {"gflops_median": gflops[mode], "runs": v} for mode, v in flops.items()}
    return {"ringtest": rings,
            "gemm": {"n": gemm_n, **gemms,
                     "yield_vs_spin": round(gflops["yield"] / gflops["spin"], 3)}}


def main() -> int:
    """Boot, measure, tear down, write the results."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--gemm-n", type=int, default=1024)
    ap.add_argument("--out", type=Path, default=REPO / "bench/results/mpi_yield.json")
    args = ap.parse_args()
    vhpc_timed(NAME, "clean", timeout=300)
    vhpc_stdout(NAME, "up", "-n", "2", "--memory", "512M", timeout=1200)
    try:
        vhpc_stdout(NAME, "node", "add", "--cpuset", "0-1", "--memory", "512M",
                    timeout=600)
        results = measure(args.reps, args.gemm_n)
    finally:
        vhpc_timed(NAME, "down", timeout=600)
    doc = {"when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
           "host": {"cpus": os.cpu_count(), "kernel": platform.release()},
           "command": RING, "reps": args.reps, **results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    for layout, modes in results["ringtest"].items():
        for mode, r in modes.items():
            print(f"{layout:16} {mode:5} 2 ranks {r['ranks_2_s']:.4f} s  4 ranks "
                  f"{r['ranks_4_s']:.4f} s  ratio {r['ratio_4_to_2']}")
    g = results["gemm"]
    print(f"gemm N={g['n']} spin {g['spin']['gflops_median']:.2f} GFLOPS  yield "
          f"{g['yield']['gflops_median']:.2f} GFLOPS  ({g['yield_vs_spin']}x)")
    print(f"results: {args.out.relative_to(REPO) if args.out.is_relative_to(REPO) else args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
