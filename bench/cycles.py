"""Leak check (issue 13): up/down cycles and crash-and-clean cycles leave nothing behind.

Each cycle boots a small cluster through the real CLI, writes a file into every node's
/dev/shm and /tmp, then either runs `vhpc down` (an up/down cycle) or kills the manager
and every daemon with SIGKILL by the pids the cluster's own ledger records and runs
`vhpc clean --force` (a crash-and-clean cycle). After each cycle it looks for anything of
the cluster on the host: links of its bridge and veths (names read from its ledger while
it was up), its cgroups, mounts and namespace pins under its state directory, processes
in its cgroups or naming its state directory, the marker file in the host's /dev/shm,
and the state directory itself.

Result: bench/results/cycles.json. Run as root:

    .venv/bin/python bench/cycles.py                  # 20 up/down + 5 crash-and-clean
    .venv/bin/python bench/cycles.py --up-down 2 --crash 1 --out /tmp/cycles.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
VHPC = str(REPO / ".venv" / "bin" / "vhpc")
CLUSTER = "benchcyc"
STATE = Path("/var/lib/vhpc") / CLUSTER
MARKER = f"vhpc-{CLUSTER}-shm-marker"


def vhpc(*args: str, timeout: float = 300.0) -> subprocess.CompletedProcess[str]:
    """Run `vhpc -c CLUSTER ARGS`, raising with its output on failure."""
    proc = subprocess.run([VHPC, "-c", CLUSTER, *args], capture_output=True, text=True,
                          timeout=timeout, check=False, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise RuntimeError(f"vhpc {' '.join(args)} failed ({proc.returncode}): "
                           f"{proc.stderr.strip()[-400:]}")
    return proc


def ledger_entries() -> list[dict[str, Any]]:
    """The live entries of the cluster's ledger (read with vhpc's own Ledger)."""
    from vhpc.cluster.ledger import Ledger

    return [{"kind": e.kind.value, "ident": e.ident, "data": e.data}
            for e in Ledger(STATE / "ledger.jsonl").entries()]


def owned_links() -> set[str]:
    """The bridge and veths the ledger records as the cluster's own."""
    return {e["ident"] for e in ledger_entries() if e["kind"] in ("bridge", "veth")}


def ledger_pids() -> list[int]:
    """Every pid the ledger records (the manager and every daemon)."""
    return [int(e["data"]["pid"]) for e in ledger_entries()
            if e["kind"] == "process" and isinstance(e["data"].get("pid"), int)]


def leftovers(links: set[str]) -> list[str]:
    """What of the cluster is still on the host."""
    found = [f"link {name}" for name in sorted(links) if Path(f"/sys/class/net/{name}").exists()]
    for cgroup in Path("/sys/fs/cgroup").glob(f"*/vhpc-{CLUSTER}"):
        found.append(f"cgroup {cgroup}")
    if Path(f"/sys/fs/cgroup/vhpc-{CLUSTER}").exists():
        found.append(f"cgroup /sys/fs/cgroup/vhpc-{CLUSTER}")
    mounts = Path("/proc/self/mountinfo").read_text()
    if f"{STATE}/" in mounts or f" {STATE} " in mounts:
        found.append("mounts under the state directory")
    if Path("/dev/shm", MARKER).exists():
        found.append(f"/dev/shm/{MARKER} on the host")
    if STATE.exists():
        found.append(f"state directory {STATE}")
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            cgroups = (proc / "cgroup").read_text()
        except OSError:
            continue
        if f"{STATE}/" in cmdline or f"/vhpc-{CLUSTER}/" in cgroups:
            found.append(f"process {proc.name}: {cmdline[:60]}")
    return found


def mark_nodes(status: dict[str, Any]) -> None:
    """A file in every node's /dev/shm and /tmp (they must go with the node)."""
    for node in status.get("nodes", []):
        vhpc("exec", str(node["name"]), "--", "sh", "-c",
             f"echo x > /dev/shm/{MARKER} && echo x > /tmp/{MARKER}")


def crash() -> None:
    """SIGKILL the manager and every daemon the ledger records (by pid, never by name)."""
    for pid in ledger_pids():
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def cycle(kind: str, nodes: int) -> dict[str, Any]:
    """One up, marks, then down (kind 'up-down') or crash + clean (kind 'crash-clean')."""
    t0 = time.monotonic()
    vhpc("up", "-n", str(nodes))
    up_s = time.monotonic() - t0
    status = json.loads(vhpc("status", "--json").stdout)
    links = owned_links()
    mark_nodes(status)
    t1 = time.monotonic()
    if kind == "up-down":
        vhpc("down")
    else:
        crash()
        vhpc("clean", "--force")
    end_s = time.monotonic() - t1
    left = leftovers(links)
    return {"kind": kind, "up_s": round(up_s, 2), "end_s": round(end_s, 2),
            "links_checked": len(links), "leftovers": left}


def main(argv: list[str] | None = None) -> int:
    """Run the cycles and write the JSON result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--up-down", type=int, default=20, help="up/down cycles")
    parser.add_argument("--crash", type=int, default=5, help="crash-and-clean cycles")
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "cycles.json")
    args = parser.parse_args(argv)
    if STATE.exists():
        print(f"cluster {CLUSTER} has state on this host: 'vhpc -c {CLUSTER} down' first",
              file=sys.stderr)
        return 2
    runs = []
    for i, kind in enumerate(["up-down"] * args.up_down + ["crash-clean"] * args.crash, 1):
        result = cycle(kind, args.nodes)
        runs.append(result)
        print(f"{i:2d} {kind:11s} up {result['up_s']:5.2f} s  end {result['end_s']:5.2f} s  "
              f"leftovers: {len(result['leftovers'])} {result['leftovers'][:3]}",
              file=sys.stderr)
    total = sum(len(r["leftovers"]) for r in runs)
    doc = {"date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
           "nodes": args.nodes, "cycles": runs, "leftovers_total": total,
           "loadavg": os.getloadavg()}
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"{len(runs)} cycles, {total} leftovers -> {args.out.relative_to(REPO)}"
          if args.out.is_relative_to(REPO) else f"{total} leftovers", file=sys.stderr)
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
