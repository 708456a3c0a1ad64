"""Step launch under host load (issue 12, part 2): multi-node steps while the host is saturated.

Boots one cluster (`vhpc up -n NODES`, name `slload`), starts bounded CPU hogs on the host
(busy loops under `timeout`, each in its own session, killed by their pids at the end),
then runs STEPS multi-node steps from the controller node as the cluster user, in
`--streams` concurrent loops inside one `vhpc exec` (so the count is Slurm's, not the CLI
start-up's): `srun -N4 hostname`, `srun -N8 hostname` and (with `--mpi`, every fourth step)
an MPI allreduce over PMIx (`srun -N4 --mpi=pmix python -c ...`); with `--traffic K`
an MPI all-to-all keeps the last K nodes' links busy meanwhile. A step fails when srun
exits non-zero or fewer hosts answer than asked. The report counts failures by Slurm's
error line (e.g. `Communication connection failure`), the host's load average, the node
states after the run (a `Kill task failed` drain shows there) and the per-step wall times.

Run as root, under the big-run lock (it saturates the host):

    flock /work/notes/big.lock .venv/bin/python bench/launch_load.py
    flock /work/notes/big.lock .venv/bin/python bench/launch_load.py --hogs 12 --steps 400
    flock /work/notes/big.lock .venv/bin/python bench/launch_load.py --traffic 4 \
        --out bench/results/launch_load_traffic.json

Result: bench/results/launch_load.json (or --out).
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from common import REPO, VHPC, vhpc_stdout, vhpc_timed

from vhpc.spec.paths import ClusterPaths

MPI_SNIPPET = ("from mpi4py import MPI; c = MPI.COMM_WORLD; "
               "n = c.allreduce(1); print(MPI.Get_processor_name()) if n == c.size else 1/0")
JOB_PYTHON = "/opt/vhpc/venv/bin/python"

#: The loop that runs inside the controller node: one line per step,
#: `STEP <i> <nodes> <rc> <hosts answering> <seconds>`, then srun's stderr lines
#: prefixed `ERR <i> `.
STREAM = r"""
i=$1; step=$2; last=$3; mpi=$4
while [ "$i" -le "$last" ]; do
  case $(( i % 4 )) in
    1) k=8 ;;
    *) k=4 ;;
  esac
  if [ "$mpi" = 1 ] && [ $(( i % 4 )) = 3 ]; then
    cmd="srun -N$k --ntasks-per-node=1 --mpi=pmix @PYTHON@ -c '@SNIPPET@'"
  else
    cmd="srun -N$k --ntasks-per-node=1 hostname"
  fi
  t0=$(date +%s.%N)
  out=$(eval "$cmd" 2>/tmp/launch-load-err.$i)
  rc=$?
  t1=$(date +%s.%N)
  hosts=$(printf '%s\n' "$out" | grep -c '^compute')
  echo "STEP $i $k $rc $hosts $(awk "BEGIN{print $t1 - $t0}")"
  sed "s/^/ERR $i /" /tmp/launch-load-err.$i
  rm -f /tmp/launch-load-err.$i
  i=$(( i + step ))
done
""".replace("@PYTHON@", JOB_PYTHON).replace("@SNIPPET@", MPI_SNIPPET)

#: The background traffic of `--traffic K`: an MPI all-to-all of 64 KiB per pair on the
#: last K nodes until the stop file (argv[1]) appears; rank 0 decides, every 10 rounds.
ALLTOALL = """import os, sys
import numpy as np
from mpi4py import MPI
c = MPI.COMM_WORLD
send = np.ones(c.size * 65536, dtype=np.uint8)
recv = np.empty_like(send)
rounds, stop = 0, False
while not stop:
    for _ in range(10):
        c.Alltoall(send, recv)
    rounds += 10
    stop = c.bcast(os.path.exists(sys.argv[1]) if c.rank == 0 else None)
if c.rank == 0:
    print("alltoalls", rounds)
"""

#: Slurm's error lines, reduced to a class for the report.
ERROR_CLASSES = (
    ("connection failure", re.compile(r"Communication connection failure")),
    ("socket timed out", re.compile(r"Socket timed out")),
    ("authentication", re.compile(r"authentication|credential|[Mm]unge")),
    ("kill task failed", re.compile(r"Kill task failed")),
    ("node failure", re.compile(r"NODE_FAIL|Node failure|node failure")),
    ("pmix", re.compile(r"pmix|PMIx|PMIX")),
)


def start_hogs(count: int, seconds: int) -> list[int]:
    """Start `count` busy loops bounded by `timeout SECONDS`, each in its own session;
    their pids (= their process group ids)."""
    pids = []
    for _ in range(count):
        proc = subprocess.Popen(["timeout", str(seconds), "sh", "-c", "while :; do :; done"],
                                start_new_session=True, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        pids.append(proc.pid)
    return pids


def stop_hogs(pids: list[int]) -> None:
    """Kill the hogs this run started: each one's own process group, by its id."""
    for pid in pids:
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for pid in pids:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass


def start_traffic(cluster: str, nodes: int, count: int, stop: Path) -> subprocess.Popen[str]:
    """Start the all-to-all on the last `count` of `nodes` compute nodes (as cluser)."""
    stop.unlink(missing_ok=True)
    last = ",".join(f"compute{i}" for i in range(nodes - count, nodes))
    return subprocess.Popen(
        [VHPC, "-c", cluster, "exec", "slurm", "--user", "cluser", "--", "srun",
         f"-N{count}", "-w", last, "--mpi=pmix", "-t", "60", JOB_PYTHON, "-c", ALLTOALL,
         str(stop)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def stop_traffic(proc: subprocess.Popen[str], stop: Path) -> int:
    """Ask the all-to-all to end; the rounds it did (0 if it failed)."""
    stop.touch()
    try:
        out, _ = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    stop.unlink(missing_ok=True)
    found = re.search(r"alltoalls (\d+)", out or "")
    return int(found.group(1)) if found else 0


def classify(lines: list[str]) -> str:
    """The class of a failed step's srun error lines ('other' if none matches)."""
    text = "\n".join(lines)
    for name, pattern in ERROR_CLASSES:
        if pattern.search(text):
            return name
    return "other" if text.strip() else "too few hosts"


def parse_streams(output: str) -> tuple[list[dict[str, Any]], dict[int, list[str]]]:
    """STEP records and the error lines of each step from the streams' output."""
    steps: list[dict[str, Any]] = []
    errors: dict[int, list[str]] = collections.defaultdict(list)
    for line in output.splitlines():
        parts = line.split(" ", 2)
        if parts[0] == "STEP":
            i, k, rc, hosts, secs = line.split()[1:6]
            steps.append({"step": int(i), "nodes": int(k), "rc": int(rc),
                          "hosts": int(hosts), "seconds": float(secs)})
        elif parts[0] == "ERR" and len(parts) == 3:
            errors[int(parts[1])].append(parts[2])
    return steps, errors


def run_steps(cluster: str, steps: int, streams: int, mpi: bool,
              timeout: float) -> tuple[float, list[dict[str, Any]], dict[int, list[str]]]:
    """Run the steps in `streams` concurrent loops inside the controller; (wall seconds,
    step records, error lines by step)."""
    loops = " & ".join(
        f"sh -c {shq(STREAM)} stream {first} {streams} {steps} {int(mpi)}"
        for first in range(1, streams + 1))
    seconds, proc = vhpc_timed(cluster, "exec", "slurm", "--user", "cluser", "--",
                               "bash", "-c", f"cd; {loops}; wait", timeout=timeout)
    found, errors = parse_streams(proc.stdout)
    return seconds, found, errors


def shq(text: str) -> str:
    """Single-quote `text` for sh."""
    return "'" + text.replace("'", "'\"'\"'") + "'"


def node_problems(cluster: str) -> list[dict[str, str]]:
    """Compute nodes that are not idle/allocated after the run, with Slurm's reason."""
    _, out = vhpc_stdout(cluster, "exec", "slurm", "--", "sinfo", "-h", "-N", "-o",
                         "%N|%T|%E", timeout=120)
    bad = []
    for line in out.splitlines():
        name, state, reason = [*line.split("|"), "", ""][:3]
        if state not in ("idle", "allocated", "mixed", "completing"):
            bad.append({"node": name, "state": state, "reason": reason})
    return bad


def slurm_settings(cluster: str) -> dict[str, str]:
    """The launch-related settings slurmctld runs with."""
    _, out = vhpc_stdout(cluster, "exec", "slurm", "--", "scontrol", "show", "config",
                         timeout=120)
    keys = ("MessageTimeout", "TCPTimeout", "UnkillableStepTimeout", "KillWait",
            "SlurmdTimeout", "TreeWidth")
    found = {}
    for line in out.splitlines():
        key, _, value = line.partition("=")
        if key.strip() in keys:
            found[key.strip()] = value.strip()
    return found


def host_counters() -> dict[str, int]:
    """Host-wide network counters that explain launch failures: packets the per-CPU
    backlog dropped (softnet_stat, over netdev_max_backlog) and neighbour-table overflows
    (arp_cache table_fulls, over gc_thresh3)."""
    drops = sum(int(line.split()[1], 16)
                for line in Path("/proc/net/softnet_stat").read_text().splitlines())
    arp = Path("/proc/net/stat/arp_cache").read_text().splitlines()
    fulls = int(arp[1].split()[-1], 16) if len(arp) > 1 else 0
    return {"backlog_drops": drops, "neighbour_table_fulls": fulls}


def summarize(steps: list[dict[str, Any]], errors: dict[int, list[str]],
              wanted: int) -> dict[str, Any]:
    """Failure count, rate and classes, and step wall times."""
    failed = [s for s in steps if s["rc"] != 0 or s["hosts"] != s["nodes"]]
    classes = collections.Counter(classify(errors.get(s["step"], [])) for s in failed)
    missing = wanted - len(steps)  # a stream that died (counted as failures)
    times = [s["seconds"] for s in steps]
    return {
        "steps": wanted, "ran": len(steps), "failed": len(failed) + missing,
        "failure_rate": round((len(failed) + missing) / wanted, 4) if wanted else 0.0,
        "failure_classes": dict(classes),
        "failed_steps": [{**s, "errors": errors.get(s["step"], [])[:6]} for s in failed][:20],
        "step_seconds_median": round(statistics.median(times), 3) if times else None,
        "step_seconds_max": round(max(times), 3) if times else None,
    }


def main() -> int:
    """Boot, load, run the steps, report."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", "--nodes", type=int, default=16)
    ap.add_argument("--memory", default="256M", help="memory per node")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--streams", type=int, default=4, help="concurrent step loops")
    ap.add_argument("--hogs", type=int, default=4 * (os.cpu_count() or 1),
                    help="busy loops on the host (default: 4 per CPU)")
    ap.add_argument("--hog-seconds", type=int, default=1800, help="the hogs' time bound")
    ap.add_argument("--no-mpi", action="store_true", help="hostname steps only")
    ap.add_argument("--traffic", type=int, default=0, metavar="K",
                    help="also an MPI all-to-all on the last K nodes during the steps")
    ap.add_argument("--name", default="slload", help="cluster name")
    ap.add_argument("--reuse", action="store_true",
                    help="run on the running cluster NAME (no boot, no down)")
    ap.add_argument("--out", type=Path, default=REPO / "bench/results/launch_load.json")
    args = ap.parse_args()

    boot_s = 0.0
    if not args.reuse:
        boot_s, up = vhpc_timed(args.name, "up", "-n", str(args.nodes), "--memory",
                                args.memory, "--overcommit", timeout=1200)
        if up.returncode != 0:
            raise SystemExit(f"vhpc up failed: {up.stderr.strip()}")
    hogs: list[int] = []
    result: dict[str, Any] = {}
    try:
        settings = slurm_settings(args.name)
        hogs = start_hogs(args.hogs, args.hog_seconds)
        stop = ClusterPaths.of(args.name).home / "cluser" / "launch-load.stop"
        traffic = start_traffic(args.name, args.nodes, args.traffic, stop) \
            if args.traffic else None
        time.sleep(5)  # let the load average climb (and the all-to-all start)
        load_before, counters = os.getloadavg(), host_counters()
        wall, steps, errors = run_steps(args.name, args.steps, args.streams,
                                        not args.no_mpi, timeout=args.hog_seconds)
        load_after, after = os.getloadavg(), host_counters()
        rounds = stop_traffic(traffic, stop) if traffic is not None else None
        stop_hogs(hogs)
        hogs = []
        result = {
            "traffic_alltoalls": rounds,
            **summarize(steps, errors, args.steps),
            "wall_seconds": round(wall, 1),
            "loadavg_start": [round(v, 2) for v in load_before],
            "loadavg_end": [round(v, 2) for v in load_after],
            "host_counters_delta": {k: after[k] - counters[k] for k in after},
            "node_problems": node_problems(args.name),
            "slurm": settings,
        }
    finally:
        stop_hogs(hogs)
        down_seconds, down = (0.0, None) if args.reuse else \
            vhpc_timed(args.name, "down", timeout=600)
    doc = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "host": {"cpus": os.cpu_count(), "kernel": platform.release()},
        "config": {"nodes": args.nodes, "memory": args.memory, "steps": args.steps,
                   "streams": args.streams, "hogs": args.hogs, "mpi": not args.no_mpi,
                   "traffic_nodes": args.traffic},
        "boot_seconds": round(boot_s, 2), "down_seconds": round(down_seconds, 2),
        "down_ok": down is None or down.returncode == 0, **result,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps({k: doc[k] for k in ("steps", "failed", "failure_rate",
                                          "failure_classes", "loadavg_end",
                                          "node_problems") if k in doc}, indent=1))
    print(f"results: {args.out.relative_to(REPO) if args.out.is_relative_to(REPO) else args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
