"""Two simulated hosts joined by VXLAN: node-to-node latency and throughput across the
overlay against within one host's bridge (docs/multi-host.md).

Everything lives in network namespaces named `cgmh*` (none of it in the host's own):
- "hosts" cgmhA and cgmhB, joined by a veth pair `ul0` (the underlay, 192.168.77.0/30);
- in each host a bridge `br0` (the cluster bridge) with a VXLAN port `vx0` (VNI 4242, UDP
  4789, unicast to the other host's underlay address), as docs/multi-host.md proposes;
- node namespaces cgmhA1, cgmhA2 on A's bridge and cgmhB1 on B's, 10.77.0.0/24, all with
  the overlay's MTU (1450: VXLAN takes 50 bytes of the underlay's 1500), so the two
  node pairs differ only in the path.

Measured between node namespaces (and host to host over the bare underlay, for scale):
TCP request/response of 1 byte (TCP_NODELAY; what a Slurm RPC or an MPI small message
pays; both ends pinned to one CPU) and one TCP stream's throughput (sendfile, unpinned),
in alternating rounds; medians. The clients and
servers are this script again, run in the namespaces with `nsenter --net`. Afterwards
every namespace it made is deleted (which deletes their links) and the run checks that
no `cgmh*` namespace is left.

    .venv/bin/python bench/multi_host_sim.py [--rounds 5] [--seconds 3] [--pings 2000]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from common import REPO

PREFIX = "cgmh"
HOSTS = {"A": "192.168.77.1", "B": "192.168.77.2"}
NODES = {"A1": ("A", "10.77.0.11"), "A2": ("A", "10.77.0.12"), "B1": ("B", "10.77.0.21")}
VNI = 4242
VXLAN_PORT = 4789
OVERLAY_MTU = 1450
PORT = 5201
PATHS = {  # label -> (client namespace, server namespace, server address)
    "same_bridge": ("A1", "A2", NODES["A2"][1]),
    "across_vxlan": ("A1", "B1", NODES["B1"][1]),
    "underlay_host_to_host": ("A", "B", HOSTS["B"]),
}
RESULTS = REPO / "bench" / "results" / "multi_host_sim.json"




def sh(*argv: str) -> None:
    """Run a command, failing with its stderr."""
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"{' '.join(argv)}: {done.stderr.strip()}")


class Sim:
    """The namespaces of one run; `close` deletes exactly those."""

    def __init__(self, prefix: str = PREFIX) -> None:
        self.prefix = prefix
        self.made: list[str] = []

    def ns(self, short: str) -> str:
        """The namespace of a host ("A") or node ("A1")."""
        return f"{self.prefix}{short}"

    def in_ns(self, short: str, *args: str) -> list[str]:
        """argv that runs this script with `args` in a namespace."""
        return ["nsenter", f"--net=/run/netns/{self.ns(short)}", sys.executable, __file__,
                *args]

    def add_ns(self, name: str) -> None:
        if Path(f"/run/netns/{name}").exists():
            raise SystemExit(f"network namespace {name} exists (an interrupted run?): "
                             f"remove it with 'ip netns del {name}'")
        sh("ip", "netns", "add", name)
        self.made.append(name)
        sh("ip", "-n", name, "link", "set", "lo", "up")

    def build(self) -> None:
        """Hosts, underlay, bridges with VXLAN ports, and nodes."""
        for host in HOSTS:
            self.add_ns(self.ns(host))
        sh("ip", "-n", self.ns("A"), "link", "add", "ul0", "type", "veth",
           "peer", "name", "ul0", "netns", self.ns("B"))
        for host, address in HOSTS.items():
            other = next(a for h, a in HOSTS.items() if h != host)
            ip = ("ip", "-n", self.ns(host))
            sh(*ip, "addr", "add", f"{address}/30", "dev", "ul0")
            sh(*ip, "link", "set", "ul0", "up")
            sh(*ip, "link", "add", "br0", "type", "bridge")
            sh(*ip, "link", "add", "vx0", "type", "vxlan", "id", str(VNI), "local", address,
               "remote", other, "dstport", str(VXLAN_PORT), "dev", "ul0")
            sh(*ip, "link", "set", "vx0", "master", "br0", "up")
            sh(*ip, "link", "set", "br0", "up")
        for node, (host, address) in NODES.items():
            self.add_ns(self.ns(node))
            port = f"v{node.lower()}"
            sh("ip", "-n", self.ns(host), "link", "add", port, "type", "veth",
               "peer", "name", "eth0", "netns", self.ns(node))
            sh("ip", "-n", self.ns(host), "link", "set", port, "master", "br0", "mtu",
               str(OVERLAY_MTU), "up")
            sh("ip", "-n", self.ns(node), "link", "set", "eth0", "mtu", str(OVERLAY_MTU), "up")
            sh("ip", "-n", self.ns(node), "addr", "add", f"{address}/24", "dev", "eth0")

    def close(self) -> list[str]:
        """Delete the namespaces made (their links go with them); what is left."""
        for name in reversed(self.made):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
        self.made.clear()
        return sorted(n for n in os.listdir("/run/netns") if n.startswith(self.prefix)) \
            if os.path.isdir("/run/netns") else []


# -- the two ends, run inside the namespaces -------------------------------------------
def serve(port: int) -> None:
    """Answer connections: 'P' echoes bytes back, 'T' counts bytes and reports them."""
    listener = socket.create_server(("0.0.0.0", port), reuse_port=True)
    print("ready", flush=True)
    while True:
        conn, _ = listener.accept()
        with conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            mode = conn.recv(1)
            if mode == b"P":
                with pinned(int(conn.recv(4))):
                    while data := conn.recv(64):
                        conn.sendall(data)
            elif mode == b"T":
                total, buf = 0, bytearray(1 << 20)
                while got := conn.recv_into(buf):
                    total += got
                conn.sendall(struct.pack("!Q", total))
            elif mode == b"Q":
                return


@contextlib.contextmanager
def pinned(cpu: int) -> Iterator[None]:
    """Run on one CPU meanwhile (both ends of a ping-pong on the same one: a wakeup on
    another CPU costs 30-50 us more on this machine, whichever path)."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def ping_pong(address: str, port: int, count: int, cpu: int) -> dict[str, float]:
    """`count` 1-byte round trips, both ends on `cpu`; median and 99th percentile in
    microseconds."""
    with socket.create_connection((address, port)) as conn, pinned(cpu):
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.sendall(b"P" + f"{cpu:4d}".encode())
        times = []
        for _ in range(count):
            t0 = time.perf_counter_ns()
            conn.sendall(b"x")
            conn.recv(1)
            times.append((time.perf_counter_ns() - t0) / 1000)
    times.sort()
    return {"rtt_median_us": round(statistics.median(times), 1),
            "rtt_p99_us": round(times[int(len(times) * 0.99) - 1], 1)}


def stream(address: str, port: int, seconds: float) -> dict[str, float]:
    """One TCP stream for `seconds`; what the receiver counted, in Gbit/s.

    The sender is sendfile(2) from a memory file (no copy through Python), the receiver
    recv_into one buffer: the kernel's path, not the interpreter, is what is measured.
    """
    size = 1 << 24
    zeros = os.memfd_create("cgmh-stream")
    os.ftruncate(zeros, size)
    with socket.create_connection((address, port)) as conn:
        conn.sendall(b"T")
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds:
            offset = 0
            while offset < size:
                offset += os.sendfile(conn.fileno(), zeros, offset, size - offset)
        conn.shutdown(socket.SHUT_WR)
        total = struct.unpack("!Q", conn.recv(8))[0]
        elapsed = time.monotonic() - t0
    os.close(zeros)
    return {"gbit_s": round(total * 8 / elapsed / 1e9, 3)}


def client(address: str, port: int, pings: int, seconds: float, cpu: int) -> None:
    """Both measurements against one server; one JSON line."""
    print(json.dumps({**ping_pong(address, port, pings, cpu),
                      **stream(address, port, seconds)}))


# -- the run ---------------------------------------------------------------------------
def measure(sim: Sim, rounds: int, pings: int, seconds: float,
            cpu: int) -> dict[str, list[dict[str, float]]]:
    """Alternating rounds over every path; the raw results per path."""
    servers = {}
    for _, server, _ in PATHS.values():
        if server not in servers:
            proc = subprocess.Popen(sim.in_ns(server, "serve", str(PORT)), stdout=subprocess.PIPE,
                                    text=True)
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != "ready":
                raise SystemExit(f"the server in {sim.ns(server)} did not start")
            servers[server] = proc
    raw: dict[str, list[dict[str, float]]] = {label: [] for label in PATHS}
    try:
        for _ in range(rounds):
            for label, (src, _, address) in PATHS.items():
                done = subprocess.run(
                    sim.in_ns(src, "client", address, str(PORT), str(pings), str(seconds),
                          str(cpu)),
                    capture_output=True, text=True, timeout=60 + seconds, check=False)
                if done.returncode:
                    raise SystemExit(f"{label}: {done.stderr.strip()}")
                raw[label].append(json.loads(done.stdout))
    finally:
        for proc in servers.values():
            proc.kill()
            proc.wait()
    return raw


def summarize(raw: dict[str, list[dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Medians over rounds, per path and measure."""
    return {label: {key: round(statistics.median(r[key] for r in runs), 3)
                    for key in runs[0]} for label, runs in raw.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="role")
    srv = sub.add_parser("serve", help="(inside a namespace) the server end")
    srv.add_argument("port", type=int)
    cli = sub.add_parser("client", help="(inside a namespace) the client end")
    cli.add_argument("address")
    cli.add_argument("port", type=int)
    cli.add_argument("pings", type=int)
    cli.add_argument("seconds", type=float)
    cli.add_argument("cpu", type=int)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--rr-cpu", type=int, default=max(os.sched_getaffinity(0)),
                        help="the CPU both ends of the request/response test run on")
    parser.add_argument("--pings", type=int, default=2000, help="round trips a round")
    parser.add_argument("--seconds", type=float, default=3.0, help="stream time a round")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--prefix", default=PREFIX, help="of the namespaces' names")
    args = parser.parse_args()
    if args.role == "serve":
        serve(args.port)
        return
    if args.role == "client":
        client(args.address, args.port, args.pings, args.seconds, args.cpu)
        return
    sim = Sim(args.prefix)
    try:
        sim.build()
        raw = measure(sim, args.rounds, args.pings, args.seconds, args.rr_cpu)
    finally:
        leftovers = sim.close()
    summary = summarize(raw)
    across, same = summary["across_vxlan"], summary["same_bridge"]
    result: dict[str, Any] = {
        "setup": {"hosts": "network namespaces joined by a veth underlay (MTU 1500)",
                  "overlay": f"VXLAN VNI {VNI}, UDP {VXLAN_PORT}, unicast, in each host's "
                             "bridge", "node_mtu": OVERLAY_MTU, "rounds": args.rounds,
                  "pings_per_round": args.pings, "stream_seconds": args.seconds,
                  "rr_cpu": args.rr_cpu,
                  "cpus": os.cpu_count(), "loadavg_at_end": os.getloadavg()[0]},
        "median": summary,
        "vxlan_over_bridge": {
            "rtt_median": round(across["rtt_median_us"] / same["rtt_median_us"], 2),
            "throughput": round(across["gbit_s"] / same["gbit_s"], 2)},
        "raw": raw,
        "leftovers": leftovers,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: result[k] for k in ("median", "vxlan_over_bridge", "leftovers")},
                     indent=1))
    if leftovers:
        raise SystemExit(f"left behind: {leftovers}")


if __name__ == "__main__":
    main()
