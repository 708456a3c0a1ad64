"""Per-job cgroups (issue 9, item 2): what they add to a node's memory and to boot time.

Two source trees of vhpc, identical but for the per-job limits change, booted one after
the other in the same run (alternating, so machine noise hits both):

- before: the commit before job limits (`--before`, default the parent of the commit that
  added services/slurm_cgroup.py): proctrack/linuxproc, task/none, no cgroup namespace;
- after: that tree with the job-limits commits applied (`--after DIR`, prepared by hand,
  or `--after-rev REV` for a plain export of REV).

Per run: wall time of `vhpc up -n N --memory M` (it returns when every compute node is
idle), then after a short settle the median over compute nodes of the node cgroup's
memory.usage_in_bytes and of the RSS sum of the node's processes, the wall time of
`srun -N N true` (three, median: job launch now makes and removes job cgroups), and of
`down`. Result: bench/results/job_limits.json. Run as root:

    .venv/bin/python bench/job_limits.py --after /var/tmp/hm-bench/after -n 16 -r 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import REPO, median_of, rss_kb, timed_run

CLUSTER = "hmbench"
TIMEOUT = 900.0


def export(rev: str, dest: Path) -> Path:
    """`git archive REV` unpacked into dest; the tree's root."""
    dest.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def default_before() -> str:
    """The parent of the commit that added services/slurm_cgroup.py."""
    out = subprocess.run(["git", "-C", str(REPO), "log", "--diff-filter=A", "--format=%H",
                          "--", "src/vhpc/services/slurm_cgroup.py"],
                         check=True, capture_output=True, text=True).stdout.split()
    return f"{out[-1]}^"


def vhpc(tree: Path, *args: str, timeout: float = TIMEOUT
         ) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Run `vhpc -c CLUSTER ARGS` from `tree`'s sources; (wall seconds, process)."""
    env = dict(os.environ, PYTHONPATH=str(tree / "src"))
    return timed_run([sys.executable, "-m", "vhpc.cli", "-c", CLUSTER, *args],
                     timeout, env=env, cwd="/")


def node_memory(tree: Path) -> dict[str, Any]:
    """Medians over idle compute nodes: cgroup memory usage and RSS of their processes."""
    _, st = vhpc(tree, "status", "--json", timeout=120)
    nodes = [n for n in json.loads(st.stdout)["nodes"] if n["role"] == "compute"]
    usage = [int(n["memory_usage"]) // 1024 for n in nodes]
    rss = [sum(rss_kb(p) for p in n["pids"]) for n in nodes]
    return {"computes": len(nodes),
            "idle": sum(1 for n in nodes if n["slurm_state"] == "idle"),
            "cgroup_usage_kb_median": int(statistics.median(usage)),
            "rss_kb_median": int(statistics.median(rss))}


def one_run(tree: Path, n: int, memory: str, settle: float) -> dict[str, Any]:
    """Boot, measure, srun, down."""
    vhpc(tree, "clean", "--force", timeout=300)
    result: dict[str, Any] = {}
    try:
        boot_s, up = vhpc(tree, "up", "-n", str(n), "--memory", memory)
        result["boot_s"] = round(boot_s, 3)
        if up.returncode != 0:
            result["error"] = (up.stderr or up.stdout).strip()[-1500:]
            return result
        time.sleep(settle)
        result.update(node_memory(tree))
        times = []
        for _ in range(3):
            t, proc = vhpc(tree, "exec", "slurm", "--user", "cluser", "--", "srun",
                           f"-N{n}", "true", timeout=300)
            if proc.returncode != 0:
                result["srun_error"] = proc.stderr.strip()[-500:]
                break
            times.append(t)
        if times:
            result["srun_true_s_median"] = round(statistics.median(times), 3)
    finally:
        down_s, _ = vhpc(tree, "down", timeout=600)
        result["down_s"] = round(down_s, 3)
    return result


def main() -> None:
    """Alternate before/after boots; write and print the medians."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", "--nodes", type=int, default=16)
    ap.add_argument("-r", "--repeats", type=int, default=2)
    ap.add_argument("--memory", default="125M")
    ap.add_argument("--settle", type=float, default=5.0)
    ap.add_argument("--before", default=None, help="git revision without job limits")
    ap.add_argument("--after", type=Path, default=None, help="a source tree with them")
    ap.add_argument("--after-rev", default="HEAD", help="else export this revision")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "job_limits.json")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vhpc-job-limits-"))
    before_rev = args.before or default_before()
    trees = {"before": export(before_rev, work / "before"),
             "after": args.after or export(args.after_rev, work / "after")}
    runs: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
    for i in range(args.repeats):
        for label, tree in trees.items():
            runs[label].append(one_run(tree, args.nodes, args.memory, args.settle))
            print(f"{label} #{i}: {runs[label][-1]}", file=sys.stderr, flush=True)
    keys = ("boot_s", "cgroup_usage_kb_median", "rss_kb_median", "srun_true_s_median",
            "down_s")
    summary = {label: {k: median_of(rs, k) for k in keys} for label, rs in runs.items()}
    out = {"nodes": args.nodes, "memory": args.memory, "before_rev": before_rev,
           "after": str(args.after or args.after_rev), "summary": summary, "runs": runs,
           "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
