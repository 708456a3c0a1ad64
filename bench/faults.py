"""Faults (issue 15): how long Slurm takes to notice a partition, and to take the node back
after `heal`; what one fault command costs.

Boots one cluster (`vhpc up -n N`, name `hnbench`), then per round: `vhpc fault partition
computeK` (timed), then polls `sinfo` from the host every 0.25 s until the node shows
Slurm's not-responding flag (`idle*`: slurmctld's ping failed; SlurmdTimeout=30 s in
vhpc's slurm.conf, pings every SlurmdTimeout/3) and then DOWN*, then `vhpc fault heal`
(timed) and polls until the node is `idle` again. The rounds use different nodes. Also
times `fault freeze`/`thaw` and `fault rate`/`clear` (the kernel work: the cgroup
freezer, tc on both ends of the link).

Result: bench/results/faults.json. Run as root:

    .venv/bin/python bench/faults.py              # 4 nodes, 3 rounds
    .venv/bin/python bench/faults.py -n 8 -r 5 --out /tmp/faults.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from common import REPO, VHPC, vhpc_stdout

CLUSTER = "hnbench"
POLL = 0.25
LIMIT = 300.0  # seconds a node may take to change state before the round fails


def vhpc(*args: str) -> tuple[float, str]:
    """Run `vhpc -c CLUSTER ARGS` (raising on failure); (wall seconds, stdout)."""
    return vhpc_stdout(CLUSTER, *args, timeout=LIMIT)


def slurm_env() -> dict[str, str]:
    """The host-side Slurm environment of the cluster ('vhpc env')."""
    env = dict(os.environ)
    for line in vhpc("env")[1].splitlines():
        if line.startswith("export "):
            key, _, value = line[len("export "):].partition("=")
            env[key] = value.strip("'\"")
    return env


def node_state(env: dict[str, str], node: str) -> str:
    """The node's state in sinfo ('idle', 'idle*', 'down*'...)."""
    out = subprocess.run(["sinfo", "-h", "-n", node, "-N", "-o", "%T"], env=env,
                         capture_output=True, text=True, timeout=30, check=False).stdout
    return out.strip()


def wait_state(env: dict[str, str], node: str, done: Any, t0: float) -> float:
    """Seconds from t0 until `done(state)`."""
    while time.monotonic() - t0 < LIMIT:
        if done(node_state(env, node)):
            return time.monotonic() - t0
        time.sleep(POLL)
    raise SystemExit(f"{node} stayed {node_state(env, node)!r} for {LIMIT:.0f}s")


def partition_round(env: dict[str, str], node: str) -> dict[str, float]:
    """One partition and heal of one node, timed."""
    t0 = time.monotonic()
    cmd, _ = vhpc("fault", "partition", node)
    not_responding = wait_state(env, node, lambda s: s.endswith("*"), t0)
    down = wait_state(env, node, lambda s: s.startswith("down"), t0)
    t1 = time.monotonic()
    heal, _ = vhpc("fault", "heal", node)
    back = wait_state(env, node, lambda s: s == "idle", t1)
    return {"partition_cmd_s": round(cmd, 3), "to_not_responding_s": round(not_responding, 2),
            "to_down_s": round(down, 2), "heal_cmd_s": round(heal, 3),
            "heal_to_idle_s": round(back, 2)}


def command_costs() -> dict[str, float]:
    """Wall time of the other fault commands (each a full CLI call to the manager)."""
    costs: dict[str, float] = {}
    for name, add, undo in (("freeze", ("freeze", "compute0"), ("thaw", "compute0")),
                            ("rate", ("rate", "compute0", "10mbit"), ("clear", "--all")),
                            ("loss", ("loss", "compute0", "5"), ("clear", "--all"))):
        costs[f"{name}_cmd_s"] = round(vhpc("fault", *add)[0], 3)
        costs[f"{name}_undo_cmd_s"] = round(vhpc("fault", *undo)[0], 3)
    return costs


def main() -> None:
    """Run the benchmark and write its JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=4, help="compute nodes")
    parser.add_argument("-r", "--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "faults.json")
    args = parser.parse_args()
    subprocess.run([VHPC, "-c", CLUSTER, "clean"], capture_output=True, check=False)
    boot, _ = vhpc("up", "-n", str(args.n), "--no-accounting")
    rounds: list[dict[str, Any]] = []
    try:
        env = slurm_env()
        for i in range(args.rounds):
            node = f"compute{i % args.n}"
            rounds.append({"node": node, **partition_round(env, node)})
            print(json.dumps(rounds[-1]), flush=True)
        costs = command_costs()
    finally:
        vhpc("down")

    def median(key: str) -> float:
        return round(statistics.median(float(r[key]) for r in rounds), 2)

    result = {
        "bench": "faults", "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "host": {"kernel": platform.release(), "cpus": os.cpu_count()},
        "nodes": args.n, "rounds": rounds, "boot_s": round(boot, 2),
        "slurm": {"SlurmdTimeout": 30, "ReturnToService": 2},
        "median": {k: median(k) for k in ("to_not_responding_s", "to_down_s",
                                          "heal_to_idle_s", "partition_cmd_s")},
        "commands": costs,
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["median"]))


if __name__ == "__main__":
    main()
