"""A vhpc compute node behind a simulated second host: its slurmd registers with the
cluster's slurmctld over VXLAN, and srun runs on it (docs/multi-host.md).

It boots a 2-node cluster `cgmhs` (no accounting), makes a "host B" network namespace
`cgmhB` joined to this host by a veth underlay (`cgmhul0`, 192.168.79.0/30) with a
bridge whose VXLAN port meets one on the cluster's bridge (`cgmhvx0`, VNI 4343), and
moves compute0's link from the cluster bridge to host B's (both ends at MTU 1450). From
then on compute0 reaches the controller only through the overlay. Measured: `node stop`
+ `node start` of compute0 (slurmd starts again and registers over VXLAN) until it is
idle, and `srun -w` on it against compute1 on the local bridge, alternating; the VXLAN
port's packet counters show the traffic crossed. Afterwards the link goes back, the
links and namespace made are deleted, the cluster is taken down, and leftovers checked.

    .venv/bin/python bench/multi_host_slurmd.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from common import REPO, timed_run, vhpc_stdout, vhpc_timed

CLUSTER = "cgmhs"
HOST_B = "cgmhB"
UNDERLAY = ("cgmhul0", "192.168.79.1", "ul0", "192.168.79.2")
VXLAN = ("cgmhvx0", "vx0", 4343)
MTU = 1450
RESULTS = REPO / "bench" / "results" / "multi_host_slurmd.json"


def sh(*argv: str) -> str:
    """Run a command, failing with its stderr; its stdout."""
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"{' '.join(argv)}: {done.stderr.strip()}")
    return done.stdout


def node_net(node: str) -> str:
    """The pinned network namespace of a node of the cluster."""
    return f"/var/lib/vhpc/{CLUSTER}/ns/{node}.net"


def host_veth(node: str) -> str:
    """The host-side veth of a node: the link whose index the node's eth0 names."""
    eth0 = json.loads(sh("nsenter", f"--net={node_net(node)}", "ip", "-j", "link", "show",
                         "eth0"))[0]
    index = eth0["link_index"]
    return next(str(link["ifname"]) for link in json.loads(sh("ip", "-j", "link"))
                if link["ifindex"] == index)


def vxlan_packets() -> dict[str, int]:
    """RX/TX packets of host B's VXLAN port."""
    stats = json.loads(sh("ip", "-n", HOST_B, "-j", "-s", "link", "show", VXLAN[1]))[0]
    return {"rx": stats["stats64"]["rx"]["packets"], "tx": stats["stats64"]["tx"]["packets"]}


class HostB:
    """The simulated second host; `close` removes exactly what `build` made."""

    def __init__(self, bridge: str) -> None:
        self.bridge = bridge
        self.made: list[tuple[str, str]] = []  # ("netns"|"link", name)
        self.moved: tuple[str, str] | None = None  # (veth, node) while on host B

    def build(self) -> None:
        if Path(f"/run/netns/{HOST_B}").exists():
            raise SystemExit(f"network namespace {HOST_B} exists (an interrupted run?): "
                             f"remove it with 'ip netns del {HOST_B}'")
        here, here_ip, there, there_ip = UNDERLAY
        sh("ip", "netns", "add", HOST_B)
        self.made.append(("netns", HOST_B))
        b = ("ip", "-n", HOST_B)
        sh(*b, "link", "set", "lo", "up")
        sh("ip", "link", "add", here, "type", "veth", "peer", "name", there, "netns", HOST_B)
        self.made.append(("link", here))
        sh("ip", "addr", "add", f"{here_ip}/30", "dev", here)
        sh("ip", "link", "set", here, "up")
        sh(*b, "addr", "add", f"{there_ip}/30", "dev", there)
        sh(*b, "link", "set", there, "up")
        vx_here, vx_there, vni = VXLAN
        sh("ip", "link", "add", vx_here, "type", "vxlan", "id", str(vni), "local", here_ip,
           "remote", there_ip, "dstport", "4789", "dev", here)
        self.made.append(("link", vx_here))
        sh("ip", "link", "set", vx_here, "master", self.bridge, "up")
        sh(*b, "link", "add", "br0", "type", "bridge")
        sh(*b, "link", "set", "br0", "up")
        sh(*b, "link", "add", vx_there, "type", "vxlan", "id", str(vni), "local", there_ip,
           "remote", here_ip, "dstport", "4789", "dev", there)
        sh(*b, "link", "set", vx_there, "master", "br0", "up")

    def move(self, node: str) -> None:
        """The node's link leaves the cluster bridge for host B's."""
        veth = host_veth(node)
        sh("ip", "link", "set", veth, "nomaster")
        sh("ip", "link", "set", veth, "netns", HOST_B)
        self.moved = (veth, node)
        sh("ip", "-n", HOST_B, "link", "set", veth, "mtu", str(MTU), "master", "br0", "up")
        sh("nsenter", f"--net={node_net(node)}", "ip", "link", "set", "eth0", "mtu", str(MTU))

    def close(self) -> None:
        """The node's link back on the cluster bridge; the links and namespace removed."""
        if self.moved is not None:
            veth, node = self.moved
            subprocess.run(["ip", "-n", HOST_B, "link", "set", veth, "netns", str(os.getpid())],
                           check=False)
            subprocess.run(["ip", "link", "set", veth, "mtu", "1500", "master", self.bridge,
                            "up"], check=False)
            subprocess.run(["nsenter", f"--net={node_net(node)}", "ip", "link", "set", "eth0",
                            "mtu", "1500"], check=False)
            self.moved = None
        for kind, name in reversed(self.made):
            argv = ["ip", "netns", "del", name] if kind == "netns" else \
                ["ip", "link", "del", name]
            subprocess.run(argv, capture_output=True, check=False)
        self.made.clear()


def srun_on(node: str) -> float:
    """Wall seconds of `srun -w NODE hostname` run in the controller; checks the name."""
    seconds, out = vhpc_stdout(CLUSTER, "exec", "slurm", "--user", "cluser", "--", "srun",
                               "-w", node, "hostname", timeout=120)
    if out.strip() != node:
        raise SystemExit(f"srun -w {node} printed {out.strip()!r}")
    return round(seconds, 3)


def restart_over_vxlan(node: str) -> dict[str, Any]:
    """node stop + node start; seconds until Slurm shows it idle, its new start time."""
    vhpc_stdout(CLUSTER, "node", "stop", node, timeout=120)
    t0 = time.monotonic()
    vhpc_stdout(CLUSTER, "node", "start", node, timeout=120)
    while True:
        _, state = vhpc_stdout(CLUSTER, "exec", "slurm", "--", "sinfo", "-h", "-N", "-n",
                               node, "-o", "%T", timeout=60)
        if state.strip() == "idle":
            break
        if time.monotonic() - t0 > 120:
            raise SystemExit(f"{node} not idle 120 s after its start: {state.strip()}")
        time.sleep(0.2)
    seconds = time.monotonic() - t0
    _, shown = vhpc_stdout(CLUSTER, "exec", "slurm", "--", "scontrol", "show", "node", node,
                           timeout=60)
    started = next(w.split("=", 1)[1] for w in shown.split() if w.startswith("SlurmdStartTime="))
    return {"start_to_idle_s": round(seconds, 3), "slurmd_start_time": started}


def leftovers(bridge: str) -> list[str]:
    """Anything of this run still on the host."""
    left = [f"netns {n}" for n in os.listdir("/run/netns") if n.startswith("cgmh")] \
        if os.path.isdir("/run/netns") else []
    links = {link["ifname"] for link in json.loads(sh("ip", "-j", "link"))}
    left += [f"link {name}" for name in links if name.startswith("cgmh") or name == bridge]
    if Path(f"/var/lib/vhpc/{CLUSTER}").exists():
        left.append(f"/var/lib/vhpc/{CLUSTER}")
    return sorted(left)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    boot_s, proc = vhpc_timed(CLUSTER, "up", "-n", "2", "--no-accounting", timeout=600)
    if proc.returncode:
        raise SystemExit(f"vhpc up failed: {proc.stderr.strip()}")
    _, status_text = vhpc_stdout(CLUSTER, "status", "--json", timeout=60)
    bridge = json.loads(status_text)["bridge"]
    host_b = HostB(bridge)
    result: dict[str, Any] = {"boot_s": round(boot_s, 3), "mtu": MTU, "rounds": args.rounds}
    try:
        host_b.build()
        host_b.move("compute0")
        before = vxlan_packets()
        result["restart_over_vxlan"] = restart_over_vxlan("compute0")
        srun: dict[str, list[float]] = {"compute0_over_vxlan": [], "compute1_local": []}
        for _ in range(args.rounds):
            srun["compute0_over_vxlan"].append(srun_on("compute0"))
            srun["compute1_local"].append(srun_on("compute1"))
        after = vxlan_packets()
        result["srun_s"] = srun
        result["srun_median_s"] = {k: round(statistics.median(v), 3) for k, v in srun.items()}
        result["vxlan_packets"] = {k: after[k] - before[k] for k in after}
    finally:
        host_b.close()
        down_s, _ = timed_run([str(REPO / ".venv" / "bin" / "vhpc"), "-c", CLUSTER, "down"],
                              timeout=300)
        result["down_s"] = round(down_s, 3)
        result["leftovers"] = leftovers(bridge)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    if result["leftovers"]:
        raise SystemExit(f"left behind: {result['leftovers']}")


if __name__ == "__main__":
    main()
