"""Accounting (issue 9, item 1): what the `db` node adds to the boot and to memory.

Side by side in one run, alternating so machine noise hits both: `vhpc up -n N` with
accounting (the default: MariaDB + slurmdbd in a `db` node, the cluster, QOS, accounts
and users registered before slurmctld starts) and with `--no-accounting`. Per run: wall
time of `up` (it returns when every compute node is idle), of `down`; with accounting,
after a short settle, the db node's memory: the RSS of mariadbd and slurmdbd
(/proc/<pid>/status VmRSS) and the node cgroup's usage (it counts page cache too), and
the wall time of a few accounting commands from the host (`sacct`, `sacctmgr show
assoc`, `sshare`). The template datadir is made before the first timed run (once per
MariaDB/slurmdbd version, ~15 s) and its making is timed separately.

Result: bench/results/accounting.json. Run as root:

    .venv/bin/python bench/accounting.py               # N=16, 3 runs each
    .venv/bin/python bench/accounting.py -n 16 -r 5 --out /tmp/acct.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from common import REPO, VHPC, rss_kb, vhpc_timed

CLUSTER = "hkbench"
TIMEOUT = 900.0
GOAL_BOOT = 0.25  # accounting adds at most 25% to the boot
GOAL_MEMORY_MB = 80.0


def vhpc(*args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Run `vhpc -c CLUSTER ARGS`; (wall seconds, completed process)."""
    return vhpc_timed(CLUSTER, *args, timeout=TIMEOUT)


def db_memory() -> dict[str, float]:
    """RSS of mariadbd and slurmdbd and the db node cgroup's usage, in MB."""
    _, proc = vhpc("status", "--json")
    doc = json.loads(proc.stdout)
    node = next(n for n in doc["nodes"] if n["name"] == "db")
    out = {f"{d['name']}_rss_mb": rss_kb(int(d["pid"])) / 1024 for d in node["services"]}
    out["daemons_rss_mb"] = sum(out.values())
    out["cgroup_usage_mb"] = node["memory_usage"] / 2**20
    return out


def host_command_s(env: dict[str, str], *argv: str) -> float:
    """Wall time of one Slurm client command on the host."""
    t0 = time.monotonic()
    subprocess.run(list(argv), env=env, capture_output=True, check=True, timeout=60)
    return time.monotonic() - t0


def host_env() -> dict[str, str]:
    """The environment `eval "$(vhpc env)"` gives."""
    out = subprocess.run(["sh", "-c", f'eval "$({VHPC} -c {CLUSTER} env)" && env -0'],
                         capture_output=True, text=True, check=True).stdout
    return dict(item.split("=", 1) for item in out.split("\0") if "=" in item)


def boot(n: int, accounting: bool, memory: str) -> tuple[float, dict[str, float]]:
    """`vhpc up` through the Python entry the CLI uses (control.up); its wall time and
    when each boot step began (seconds from the start)."""
    from vhpc import control
    from vhpc.spec.load import ClusterOptions

    steps: dict[str, float] = {}
    t0 = time.monotonic()

    def progress(step: str, done: int, total: int) -> None:
        steps.setdefault(step, round(time.monotonic() - t0, 3))

    control.up(ClusterOptions(name=CLUSTER, nodes=n, memory=memory, accounting=accounting),
               progress, timeout=TIMEOUT)
    return time.monotonic() - t0, steps


def one_run(n: int, accounting: bool, memory: str) -> dict[str, Any]:
    """Boot, measure, tear down; a dict of the figures."""
    try:
        boot_s, steps = boot(n, accounting, memory)
    except Exception as err:
        vhpc("down")
        raise SystemExit(f"vhpc up failed: {err}") from err
    run: dict[str, Any] = {"accounting": accounting, "boot_s": round(boot_s, 3),
                           "steps": steps}
    try:
        if accounting:
            time.sleep(3)  # let the daemons settle
            run.update({k: round(v, 1) for k, v in db_memory().items()})
            env = host_env()
            for name, argv in (("sacct_s", ["sacct", "-a"]),
                               ("sacctmgr_show_assoc_s", ["sacctmgr", "show", "assoc"]),
                               ("sshare_s", ["sshare", "-a"])):
                run[name] = round(host_command_s(env, *argv), 3)
    finally:
        down_s, _ = vhpc("down")
        run["down_s"] = round(down_s, 3)
    return run


def template_seconds() -> float:
    """Wall time of making the template datadir (0 if it exists already)."""
    from vhpc.services import db_template, mariadb

    target = db_template.template_dir(mariadb.server_version(), db_template.slurm_version())
    if target.exists():
        return 0.0
    t0 = time.monotonic()
    db_template.ensure_template()
    return time.monotonic() - t0


def median(runs: list[dict[str, Any]], key: str) -> float:
    """Median of one figure over runs that have it."""
    return round(float(statistics.median(r[key] for r in runs if key in r)), 3)


def main() -> None:
    """Alternate runs with and without accounting; write the JSON result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=16, help="compute nodes")
    parser.add_argument("-r", "--repeats", type=int, default=3)
    parser.add_argument("--memory", default="125M", help="memory of each compute node")
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "accounting.json"))
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    vhpc("clean", "--force")
    made = template_seconds()
    runs: list[dict[str, Any]] = []
    for i in range(args.repeats):
        for accounting in ((True, False) if i % 2 == 0 else (False, True)):
            runs.append(one_run(args.n, accounting, args.memory))
            print(json.dumps(runs[-1]), flush=True)
    with_acct = [r for r in runs if r["accounting"]]
    without = [r for r in runs if not r["accounting"]]
    boot_with, boot_without = median(with_acct, "boot_s"), median(without, "boot_s")
    added = (boot_with - boot_without) / boot_without
    summary = {
        "boot_s_with_accounting": boot_with,
        "boot_s_without_accounting": boot_without,
        "boot_added_fraction": round(added, 3),
        "db_daemons_rss_mb": median(with_acct, "daemons_rss_mb"),
        "mariadbd_rss_mb": median(with_acct, "mariadbd_rss_mb"),
        "slurmdbd_rss_mb": median(with_acct, "slurmdbd_rss_mb"),
        "db_cgroup_usage_mb": median(with_acct, "cgroup_usage_mb"),
        "sacct_s": median(with_acct, "sacct_s"),
        "sacctmgr_show_assoc_s": median(with_acct, "sacctmgr_show_assoc_s"),
        "down_s_with_accounting": median(with_acct, "down_s"),
        "down_s_without_accounting": median(without, "down_s"),
        "goal_boot_met": added <= GOAL_BOOT,
        "goal_memory_met": median(with_acct, "daemons_rss_mb") <= GOAL_MEMORY_MB,
    }
    doc = {
        "bench": "accounting",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "host": {"kernel": platform.release(), "cpus": os.cpu_count(),
                 "mariadbd": shutil.which("mariadbd"), "slurmdbd": shutil.which("slurmdbd")},
        "nodes": args.n, "memory": args.memory, "repeats": args.repeats,
        "template_made_s": round(made, 2),
        "summary": summary, "runs": runs,
    }
    Path(args.out).write_text(json.dumps(doc, indent=1) + "\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
