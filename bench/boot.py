"""Boot benchmark (issue 2): `vhpc up -n N` against the hand-made floor, side by side.

For each N the script alternates a vhpc run and a floor run (`bare_boot.sh N`) so that
machine noise hits both, and reports medians:

- vhpc boot_s: wall time of the whole `vhpc -c bench up -n N` command (it returns exactly
  when every compute node is idle in Slurm), and down_s: wall time of `vhpc -c bench down`;
- RSS per idle compute node: sum of VmRSS (/proc/<pid>/status) of every process in the
  node's cgroup (`vhpc status --json` lists its pids), plus the cgroup's `memory_usage`;
- floor boot_s and RSS per slurmd, as printed by ../shared/bench/bare_boot.sh;
- for the largest N (256): the time of `srun -N256 hostname` and whether it printed 256
  distinct hostnames.

Result: bench/results/boot.json. Run as root, with nothing else named `bench` up:

    .venv/bin/python bench/boot.py                 # N = 1 4 16 64 256, default repeats
    .venv/bin/python bench/boot.py -n 16 -n 64 -r 2 --out /tmp/boot.json

`--whole` (issue 12: the boot's fixed cost) instead times, in turn within each round, the
whole `vhpc up` command from the shell for -n 1 and -n 16, with accounting (the default)
and `--no-accounting`, and the floor for 1 and 16 nodes; medians and ratios to the floor
(bench/results/boot_whole.json). Its vhpc commands run as an installed vhpc does, from
compiled bytecode (a private PYTHONPYCACHEPREFIX, filled by one warm-up round); `--source`
runs them from source instead (PYTHONDONTWRITEBYTECODE=1, as in this repo's .venv).
Each `up` also records `<case>_host_cpu_s`: the CPU seconds the whole host was busy
during it (/proc/stat), a figure of what the boot costs only on an otherwise quiet host.

    .venv/bin/python bench/boot.py --whole -r 7 --cluster sbbench
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common import (
    FLOOR_NAME,
    REPO,
    VHPC,
    median_of,
    rss_kb,
    run_floor,
    run_srun,
    timed_run,
    vhpc_timed,
)

CLUSTER = "bench"
STATE = Path("/var/lib/vhpc") / CLUSTER
DEFAULT_NS = (1, 4, 16, 64, 256)
# Largest sizes: a /24 holds 245 computes, and 256 x 125M exceeds the 24 GB host.
BIG_N = 245
BIG_ARGS = ("--subnet", "10.203.0.0/23", "--memory", "64M")
UP_TIMEOUT = 900.0


def repeats_for(n: int) -> int:
    """3 runs for N <= 16, 2 for 64, 1 above."""
    return 3 if n <= 16 else 2 if n <= 64 else 1


def vhpc(*args: str, timeout: float = UP_TIMEOUT) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Run `vhpc -c bench ARGS`; (wall seconds, completed process)."""
    return vhpc_timed(CLUSTER, *args, timeout=timeout)


def manager_rss_kb() -> int:
    """RSS of the cluster's manager process (shared by all nodes), 0 if unknown."""
    try:
        return rss_kb(int((STATE / "run" / "manager.pid").read_text().split()[0]))
    except (OSError, ValueError, IndexError):
        return 0


def node_memory(status: dict[str, Any]) -> dict[str, Any]:
    """Per idle compute node: RSS sum of its processes and its cgroup's memory usage."""
    computes = [n for n in status["nodes"] if n["role"] == "compute"]
    rss = [sum(rss_kb(p) for p in n["pids"]) for n in computes]
    procs = [len(n["pids"]) for n in computes]
    usage = [int(n["memory_usage"]) // 1024 for n in computes]
    idle = sum(1 for n in computes if n["slurm_state"] == "idle")
    services = {n["name"]: sum(rss_kb(p) for p in n["pids"])
                for n in status["nodes"] if n["role"] != "compute"}
    return {
        "computes": len(computes),
        "idle": idle,
        "rss_kb_median": int(statistics.median(rss)),
        "rss_kb_max": max(rss),
        "processes_per_node": sorted(set(procs)),
        "cgroup_memory_usage_kb_median": int(statistics.median(usage)),
        "cgroup_memory_usage_kb_max": max(usage),
        "service_nodes_rss_kb": services,
        "manager_rss_kb": manager_rss_kb(),
    }



def run_vhpc(n: int, extra: tuple[str, ...], srun: bool) -> dict[str, Any]:
    """One vhpc boot of N nodes: boot time, memory, optional srun, down time."""
    result: dict[str, Any] = {}
    try:
        boot_s, up = vhpc("up", "-n", str(n), *extra)
        result["boot_s"] = round(boot_s, 3)
        if up.returncode != 0:  # the error names where vhpc kept the failed boot's logs
            result["error"] = (up.stderr or up.stdout).strip()[-2000:]
            return result
        _, st = vhpc("status", "--json", timeout=120)
        result.update(node_memory(json.loads(st.stdout)))
        if srun:
            result["srun"] = run_srun(CLUSTER, n, 600)
    finally:
        down_s, down = vhpc("down", timeout=600)
        result["down_s"] = round(down_s, 3)
        if down.returncode != 0:
            result["down_error"] = down.stderr.strip()[-500:]
    return result





def bench_n(n: int, repeats: int) -> dict[str, Any]:
    """Alternate vhpc and floor runs for one N."""
    extra = BIG_ARGS if n > BIG_N else ()
    vruns: list[dict[str, Any]] = []
    fruns: list[dict[str, Any]] = []
    for i in range(repeats):
        vruns.append(run_vhpc(n, extra, srun=n > BIG_N and i == 0))
        print(f"N={n} vhpc #{i}: {vruns[-1]}", file=sys.stderr, flush=True)
        fruns.append(run_floor(n, UP_TIMEOUT))
        print(f"N={n} floor #{i}: {fruns[-1]}", file=sys.stderr, flush=True)
    v, f = median_of(vruns, "boot_s"), median_of(fruns, "boot_s")
    out: dict[str, Any] = {
        "n": n,
        "vhpc_args": ["up", "-n", str(n), *extra],
        "vhpc_boot_s": [r.get("boot_s") for r in vruns],
        "vhpc_boot_s_median": v,
        "floor_boot_s": [r.get("boot_s") for r in fruns],
        "floor_boot_s_median": f,
        "ratio": round(v / f, 2) if v and f else None,
        "vhpc_rss_kb_per_compute_median": median_of(vruns, "rss_kb_median"),
        "vhpc_cgroup_memory_usage_kb_per_compute_median":
            median_of(vruns, "cgroup_memory_usage_kb_median"),
        "floor_rss_kb_per_slurmd_median": median_of(fruns, "rss_per_slurmd_kb"),
        "down_s": [r.get("down_s") for r in vruns],
        "down_s_median": median_of(vruns, "down_s"),
        "vhpc_runs": vruns,
        "floor_runs": fruns,
    }
    srun = [r["srun"] for r in vruns if "srun" in r]
    if srun:
        out["srun"] = srun[0]
    return out


def phases(n: int) -> dict[str, Any]:
    """Boot N nodes in-process through vhpc.control.up; seconds spent in each phase.

    A phase runs from the first progress message naming it to the first naming the next
    one (the manager reports them as it goes: network, creating nodes, wiring nodes,
    starting <daemon>, waiting for nodes to be idle).
    """
    from vhpc import control
    from vhpc.spec.load import ClusterOptions

    marks: list[tuple[float, str]] = []

    def progress(message: str, done: int, total: int) -> None:
        if not marks or marks[-1][1] != message:
            marks.append((time.monotonic(), message))

    options = ClusterOptions(name=CLUSTER, nodes=n)
    if n > BIG_N:
        options = dataclasses.replace(options, subnet=BIG_ARGS[1], memory=BIG_ARGS[3])
    t0 = time.monotonic()
    try:
        control.up(options, progress)
        t1 = time.monotonic()
    finally:
        down_s, _ = vhpc("down", timeout=600)
    ends = [t for t, _ in marks[1:]] + [t1]
    spent: dict[str, float] = {"manager start (before first progress)":
                               round(marks[0][0] - t0, 3) if marks else 0.0}
    for (start, name), end in zip(marks, ends, strict=True):
        spent[name] = round(spent.get(name, 0.0) + end - start, 3)
    cli_s, _ = vhpc("--help", timeout=60)
    return {"n": n, "total_s": round(t1 - t0, 3), "phases_s": spent,
            "cli_startup_s": round(cli_s, 3), "down_s": round(down_s, 3)}


#: (label, `vhpc up` arguments) of the --whole runs; the floor runs 1 and 16 nodes beside.
#: A cluster booted before registers its accounting records from a registered datadir
#: (services/registered_template.py; the runs prime it first); `n16_first_boot` boots a
#: name never booted, which registers them with sacctmgr.
WHOLE_CASES = (("n1", ("-n", "1")), ("n1_no_accounting", ("-n", "1", "--no-accounting")),
               ("n16", ("-n", "16")), ("n16_no_accounting", ("-n", "16", "--no-accounting")),
               ("n16_first_boot", ("-n", "16")))
PRIME_TIMEOUT = 120.0


def whole_env(source: bool) -> dict[str, str]:
    """The vhpc commands' environment: compiled bytecode in a private cache, or source."""
    env = dict(os.environ)
    if source:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env.pop("PYTHONPYCACHEPREFIX", None)
    else:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = "/var/tmp/vhpc-bench-pycache"
    return env


def host_busy_seconds() -> float:
    """CPU seconds the whole host has been busy since boot (/proc/stat: all but idle and
    iowait): around a quiet `up`, what the boot cost the CPUs, daemons and kernel included."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    busy = sum(fields[:8]) - fields[3] - fields[4]  # user..steal without idle, iowait
    return busy / os.sysconf("SC_CLK_TCK")


def prime_registered(cluster: str, env: dict[str, str]) -> float:
    """Boot `cluster` and wait until its registered accounting datadir is made (the
    manager makes it in the background after a first boot), then take it down; seconds
    waited."""
    from vhpc.services import db_template, registered_template, slurmdbd
    from vhpc.spec.model import ClusterSpec

    timed_run([VHPC, "-c", cluster, "up", "-n", "1"], UP_TIMEOUT, env=env)
    start = time.monotonic()
    try:
        spec = ClusterSpec.from_dict(json.loads(
            (Path("/var/lib/vhpc") / cluster / "spec.json").read_text()))
        base = db_template.template_dir(*db_template.versions())
        script = slurmdbd.bootstrap_script(spec)
        while registered_template.lookup(base, script) is None:
            if time.monotonic() - start > PRIME_TIMEOUT:
                raise SystemExit(f"no registered accounting datadir for {cluster} after "
                                 f"{PRIME_TIMEOUT:.0f}s: see its manager.log")
            time.sleep(0.5)
    finally:
        timed_run([VHPC, "-c", cluster, "down"], 600, env=env)
    return round(time.monotonic() - start, 1)


def whole_round(cluster: str, env: dict[str, str], index: int = 0) -> dict[str, Any]:
    """One round: each case's whole `vhpc up` (then its `down`), and the floor's 1 and 16."""
    out: dict[str, Any] = {}
    for label, args in WHOLE_CASES:
        name = f"{cluster}-f{index}" if label.endswith("_first_boot") else cluster
        busy = host_busy_seconds()
        seconds, proc = timed_run([VHPC, "-c", name, "up", *args], UP_TIMEOUT, env=env)
        out[f"{label}_host_cpu_s"] = round(host_busy_seconds() - busy, 2)
        down_s, down = timed_run([VHPC, "-c", name, "down"], 600, env=env)
        out[label] = round(seconds, 3) if proc.returncode == 0 else None
        out[f"{label}_down"] = round(down_s, 3)
        if proc.returncode != 0 or down.returncode != 0:
            out[f"{label}_error"] = (proc.stderr + down.stderr).strip()[-500:]
        floor_n = 1 if label == "n1" else 16 if label == "n16" else None
        if floor_n is not None:
            floor = run_floor(floor_n, UP_TIMEOUT)
            out[f"floor_n{floor_n}"] = floor.get("boot_s")
            if "error" in floor:
                out[f"floor_n{floor_n}_error"] = floor["error"]
    return out


def whole(cluster: str, rounds: int, source: bool) -> dict[str, Any]:
    """Whole-command boot times beside the floor, alternating, `rounds` rounds + a warm-up."""
    env = whole_env(source)
    whole_round(cluster, env, -1)  # warm-up: fills the bytecode cache, page cache, template
    primed = prime_registered(cluster, env)
    runs = []
    for i in range(rounds):
        runs.append(whole_round(cluster, env, i))
        print(f"round {i}: {runs[-1]}", file=sys.stderr, flush=True)
    keys = [label for label, _ in WHOLE_CASES] + ["floor_n1", "floor_n16"] + \
        [f"{label}_host_cpu_s" for label, _ in WHOLE_CASES]
    medians = {k: median_of([{k: r[k]} for r in runs if r.get(k) is not None], k)
               for k in keys}
    ratios = {}
    for label, _ in WHOLE_CASES:
        v, f = medians[label], medians["floor_n16" if label.startswith("n16") else "floor_n1"]
        ratios[f"{label}_vs_floor"] = round(v / f, 2) if v and f else None
    return {"machine": machine(), "cluster": cluster, "floor": FLOOR_NAME,
            "registered_datadir_made_in_s": primed,
            "python": "source (no bytecode cache)" if source else "compiled bytecode",
            "rounds": runs, "medians_s": medians, "ratios": ratios,
            "max_s": {k: max((r[k] for r in runs if r.get(k) is not None), default=None)
                      for k in keys},
            "min_s": {k: min((r[k] for r in runs if r.get(k) is not None), default=None)
                      for k in keys}}


def machine() -> dict[str, Any]:
    """Where and when this ran."""
    load = Path("/proc/loadavg").read_text().split()[:3]
    mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text()
                  .splitlines() if line.startswith("MemTotal:"))
    others = subprocess.run(["ip", "-o", "link", "show", "type", "bridge"],
                            capture_output=True, text=True, check=False).stdout
    return {"nproc": os.cpu_count(), "kernel": platform.release(),
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "mem_total_kb": mem_kb, "loadavg_at_start": load,
            "other_bridges_at_start": len(others.splitlines()),
            "git_head": subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                                       capture_output=True, text=True,
                                       check=False).stdout.strip()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", "--nodes", type=int, action="append",
                    help="N to measure (repeatable; default 1 4 16 64 256)")
    ap.add_argument("-r", "--repeats", type=int, help="runs per N (default 3/2/1 by size)")
    ap.add_argument("--phases", type=int, metavar="N",
                    help="instead: time the boot phases of one N-node boot and print them")
    ap.add_argument("--whole", action="store_true",
                    help="instead: whole `vhpc up` -n 1/16, with and without accounting, "
                         "beside the floor (default out: bench/results/boot_whole.json)")
    ap.add_argument("--source", action="store_true",
                    help="with --whole: run vhpc from source, not from compiled bytecode")
    ap.add_argument("--cluster", default=CLUSTER, help="with --whole: the cluster's name")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root")
    if args.whole:
        doc = whole(args.cluster, args.repeats or 5, args.source)
        out = args.out or REPO / "bench" / "results" / "boot_whole.json"
        out.write_text(json.dumps(doc, indent=1) + "\n")
        print(json.dumps({"medians_s": doc["medians_s"], "ratios": doc["ratios"]}, indent=1))
        return
    args.out = args.out or REPO / "bench" / "results" / "boot.json"
    if args.phases:
        print(json.dumps(phases(args.phases), indent=1))
        return
    result: dict[str, Any] = {"machine": machine(), "cluster": CLUSTER, "floor": FLOOR_NAME,
                              "results": []}
    for n in args.nodes or DEFAULT_NS:
        result["results"].append(bench_n(n, args.repeats or repeats_for(n)))
        result["machine"]["loadavg_at_end"] = Path("/proc/loadavg").read_text().split()[:3]
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    for r in result["results"]:
        print(f"N={r['n']:4} vhpc {r['vhpc_boot_s_median']}s floor {r['floor_boot_s_median']}s "
              f"ratio {r['ratio']} rss/node {r['vhpc_rss_kb_per_compute_median']}KB "
              f"cgroup {r['vhpc_cgroup_memory_usage_kb_per_compute_median']}KB "
              f"down {r['down_s_median']}s")


if __name__ == "__main__":
    main()
