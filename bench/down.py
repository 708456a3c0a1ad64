"""Teardown benchmark (issue 12 item 1: `down` of 1024 nodes in <= 10 s).

Boots N compute nodes (`vhpc up -n N --memory 64M --overcommit`), runs `srun -N<N>
hostname` (a down right after a full-width step is the slow case), then times the whole
`vhpc down` command from the shell. The manager's log is held open across the down (a
plain down renames the state directory aside and deletes it in the background), so its
lines of the down (each teardown step logs its time) are read after it and recorded as
the split. Afterwards nothing of the cluster may be left (links, cgroups, mounts, state
directory, processes).

Result: bench/results/down.json (one object per run, the bench's JSON format). As root:

    flock /work/notes/big.lock .venv/bin/python bench/down.py -n 1024 --name hd1024
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from common import REPO, VHPC, run_srun, timed_run, vhpc_timed

STATE_ROOT = Path("/var/lib/vhpc")
TIMEOUT = 1800.0
#: the manager's log lines of a down worth keeping: each teardown step and the stops
#: before it (server/manager.py's format: "DATE TIME,ms LEVEL logger: message")
STEP = re.compile(r"^\S+ (\d\d:\d\d:\d\d,\d{3}) \S+ [\w.]+: ((?:teardown|down):.*)$")


def leftovers(cluster: str) -> list[str]:
    """What of the cluster is still on the host (as tests/integration/helpers.py checks)."""
    found: list[str] = []
    cid = hashlib.sha1(cluster.encode()).hexdigest()[:4]
    found += [f"link {p.name}" for p in Path("/sys/class/net").iterdir()
              if p.name.startswith(f"vh{cid}")]
    found += [f"cgroup {p}" for p in Path("/sys/fs/cgroup").glob(f"*/vhpc-{cluster}")]
    state = STATE_ROOT / cluster
    if str(state) + "/" in Path("/proc/self/mountinfo").read_text():
        found.append("mounts under the state directory")
    if state.exists():
        found.append(f"state directory {state}")
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and str(state) + "/" in (
                    proc / "cmdline").read_bytes().replace(b"\0", b" ").decode():
                found.append(f"process {proc.name}")
        except OSError:
            continue
    return found


def timed_down(cluster: str, importtime: bool = False) -> dict[str, Any]:
    """`vhpc down`, timed; the manager's log lines of it (held open across the rename);
    with `importtime` the wall time the command's imports took (python -X importtime)."""
    prefix = [sys.executable, "-X", "importtime"] if importtime else []
    log_path = STATE_ROOT / cluster / "log" / "manager.log"
    with log_path.open("rb") as log:
        log.seek(0, os.SEEK_END)
        load = os.getloadavg()  # what the command starts against (the step's aftermath)
        start = dt.datetime.now()
        seconds, down = timed_run([*prefix, VHPC, "-c", cluster, "down"], timeout=900)
        lines = log.read().decode(errors="replace").splitlines()
    steps = [f"{start:%H:%M:%S,%f}"[:12] + " vhpc down starts",
             *(f"{m[1]} {m[2]}" for line in lines if (m := STEP.match(line))),
             f"{dt.datetime.now():%H:%M:%S,%f}"[:12] + " vhpc down returned"]
    out: dict[str, Any] = {"down_s": round(seconds, 2), "steps": steps,
                           "load_at_down": [round(x, 1) for x in load]}
    if importtime:
        top = [int(m[1]) for m in re.finditer(r"^import time:\s+\d+ \|\s+(\d+) \| \S",
                                               down.stderr, re.M)]
        out["cli_import_s"] = round(sum(top) / 1e6, 2)
    if down.returncode != 0:
        out["down_error"] = down.stdout.strip()[-500:]
    return out


def keep_logs(cluster: str) -> str:
    """A copy of the cluster's logs (its daemons' and slurmds') for a step that failed,
    made before the timed down; its path (outside the repo: ~1 MB per 100 nodes)."""
    kept = Path("/var/tmp") / f"vhpc-bench-{cluster}-{dt.datetime.now():%Y%m%d-%H%M%S}"
    shutil.copytree(STATE_ROOT / cluster / "log", kept)
    return str(kept)


def run(n: int, cluster: str, srun: bool, importtime: bool) -> dict[str, Any]:
    """One cluster of N nodes: boot, an srun across all, a timed down, leftovers."""
    result: dict[str, Any] = {"n": n}
    boot_s, up = vhpc_timed(cluster, "up", "-n", str(n), "--memory", "64M", "--overcommit",
                            timeout=TIMEOUT)
    result["boot_s"] = round(boot_s, 2)
    if up.returncode != 0:
        result["error"] = (up.stderr or up.stdout).strip()[-1000:]
    elif srun:
        result["srun"] = run_srun(cluster, n, 900)
        for _ in range(3):  # slurmctld may not have the user's association yet
            if "Invalid account" not in result["srun"]["stderr"]:
                break
            time.sleep(5)
            result["srun"] = run_srun(cluster, n, 900)
    if srun and not result.get("srun", {}).get("ok", True):
        result["logs_kept"] = keep_logs(cluster)
    if (STATE_ROOT / cluster / "log" / "manager.log").exists():
        result.update(timed_down(cluster, importtime))
    result["leftovers"] = leftovers(cluster)
    return result


def main() -> None:
    """Parse options, run, append the result to the JSON file."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=1024, help="compute nodes")
    ap.add_argument("--name", default="sndown", help="cluster name")
    ap.add_argument("--no-srun", action="store_true", help="down an idle cluster")
    ap.add_argument("--settle", type=float, default=8.0,
                    help="wait until the 1-minute load average is below this first")
    ap.add_argument("--importtime", action="store_true",
                    help="run down under python -X importtime, record its imports' time")
    ap.add_argument("--note", default="", help="what this run measures (kept in the JSON)")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "down.json"))
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench/down.py boots clusters: run it as root")
    while os.getloadavg()[0] > args.settle:  # the last teardown's kernel work, others'
        time.sleep(5)
    load_before = os.getloadavg()
    result = run(args.n, args.name, not args.no_srun, args.importtime)
    result.update(date=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                  load_before=[round(x, 2) for x in load_before], note=args.note)
    print(json.dumps(result, indent=1), file=sys.stderr, flush=True)
    out = Path(args.out)
    doc: dict[str, Any] = (json.loads(out.read_text()) if out.exists() else {
        "bench": "down",
        "host": {"cpus": os.cpu_count(), "kernel": platform.release()},
        "command": "vhpc up -n N --memory 64M --overcommit; srun -N N hostname; vhpc down",
        "results": []})
    doc["results"].append(result)
    out.write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
