"""The kernel side of faults: the cluster's nftables table (bridge family), tc qdiscs on a
node's link, the cgroup freezer and SIGKILL of a supervised pid.

Network faults live in one nftables table per cluster, `bridge vhpc-<cluster>`, with
three base chains on the bridge hooks: `forward` (node to node), `input` (node to the
host, e.g. the host's Slurm clients) and `output` (host to node). Rules match the nodes'
host-side veths; where the nodes' addresses are known, a cut also matches IPv4 and ARP
by address at the sender's own port, so it holds between nodes on different leaf bridges
(a frame from a leaf to the spine leaves by the uplink, not by the peer's port). The
table is rendered whole from the active faults (pure,
`render_table`) and replaced in one `nft -f` transaction; with no network fault left it is
deleted. Rate limits (`tbf`) and delays (`netem`, where the kernel has it) are the root
qdisc of the node's host-side veth (traffic to the node) and of its `eth0` inside its
network namespace (traffic from it). Every command goes through the funnel
(`hostops.run_command`).
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from vhpc.errors import CommandError, MissingDependencyError, NetemMissingError
from vhpc.runtime.cgroups import CgroupDriver
from vhpc.runtime.hostops import run_command
from vhpc.runtime.proc import ProcessRecord, is_alive

NODE_LINK = "eth0"  # the node's end of its veth, inside its network namespace
PRIORITY = -10  # before a default-priority filter of anyone else on the same hooks


@dataclass(frozen=True)
class Cut:
    """A partition: `devs` cut off from `peers` (both directions); no peers: from
    everything, i.e. every other port of the bridge and the host (devs still reach each
    other)."""

    fault_id: str
    devs: tuple[str, ...]
    peers: tuple[str, ...] = ()
    dev_addrs: tuple[str, ...] = ()  # the devs' nodes' IPv4 addresses (() = unknown)
    peer_addrs: tuple[str, ...] = ()


@dataclass(frozen=True)
class Loss:
    """Random drops of `percent` % of the frames to and from `dev`."""

    fault_id: str
    dev: str
    percent: float


def table_name(cluster: str) -> str:
    """The cluster's own nftables table (bridge family)."""
    return f"vhpc-{cluster}"


def _set(devs: tuple[str, ...]) -> str:
    names = ", ".join(f'"{d}"' for d in devs)
    return f'"{devs[0]}"' if len(devs) == 1 else "{ " + names + " }"


def _threshold(percent: float) -> int:
    """numgen's draw below which a frame drops (hundredths of a percent)."""
    return max(1, min(10000, round(percent * 100)))


def chain_rules(cuts: list[Cut], losses: list[Loss]) -> dict[str, list[str]]:
    """The rules of each base chain (forward, input, output), in fault order."""
    chains: dict[str, list[str]] = {"forward": [], "input": [], "output": []}
    for cut in cuts:
        devs = _set(cut.devs)
        note = f'comment "{cut.fault_id}"'
        if cut.peers:
            chains["forward"] += _peer_cut(cut, note)
            continue
        chains["forward"] += _cut_from_all(cut, note)
        chains["input"].append(f"iifname {devs} drop {note}")
        chains["output"].append(f"oifname {devs} drop {note}")
    for loss in losses:
        below = _threshold(loss.percent)  # nft refuses '< 10000' (always true): 100% drops all
        draw = f" numgen random mod 10000 < {below}" if below < 10000 else ""
        note = f'drop comment "{loss.fault_id}"'
        chains["forward"] += [f'iifname "{loss.dev}"{draw} {note}',
                              f'oifname "{loss.dev}"{draw} {note}']
        chains["input"].append(f'iifname "{loss.dev}"{draw} {note}')
        chains["output"].append(f'oifname "{loss.dev}"{draw} {note}')
    return chains


def _peer_cut(cut: Cut, note: str) -> list[str]:
    """Forward rules of a cut between devs and peers: by port on one bridge, and by
    address at each sender's port (across leaf bridges)."""
    devs, peers = _set(cut.devs), _set(cut.peers)
    rules = [f"iifname {devs} oifname {peers} drop {note}",
             f"iifname {peers} oifname {devs} drop {note}"]
    if cut.dev_addrs and cut.peer_addrs:
        dev_ips, peer_ips = _set_raw(cut.dev_addrs), _set_raw(cut.peer_addrs)
        rules += [f"iifname {devs} ip daddr {peer_ips} drop {note}",
                  f"iifname {peers} ip daddr {dev_ips} drop {note}",
                  f"iifname {devs} arp daddr ip {peer_ips} drop {note}",
                  f"iifname {peers} arp daddr ip {dev_ips} drop {note}"]
    return rules


def _cut_from_all(cut: Cut, note: str) -> list[str]:
    """Forward rules of a cut from everything but each other: by port when the addresses
    are unknown, else by port unless the frame is IPv4 or ARP for (from) one of the devs,
    wherever its port is (another leaf)."""
    devs = _set(cut.devs)
    if not cut.dev_addrs:
        return [f"iifname {devs} oifname != {devs} drop {note}",
                f"oifname {devs} iifname != {devs} drop {note}"]
    ips = _set_raw(cut.dev_addrs)
    out, into = f"iifname {devs} oifname != {devs}", f"oifname {devs} iifname != {devs}"
    return [f"{out} ip daddr != {ips} drop {note}",
            f"{out} arp daddr ip != {ips} drop {note}",
            f"{out} meta protocol != {{ ip, arp }} drop {note}",
            f"{into} ip saddr != {ips} drop {note}",
            f"{into} arp saddr ip != {ips} drop {note}",
            f"{into} meta protocol != {{ ip, arp }} drop {note}"]


def _set_raw(values: tuple[str, ...]) -> str:
    """An nft set of unquoted values (addresses), or the value alone."""
    return values[0] if len(values) == 1 else "{ " + ", ".join(values) + " }"


def render_table(table: str, cuts: list[Cut], losses: list[Loss]) -> str:
    """An `nft -f` script that replaces the table with these rules in one transaction
    (the first line makes it if missing, so the delete cannot fail)."""
    lines = [f"table bridge {table}", f"delete table bridge {table}",
             f"table bridge {table} {{"]
    for chain, rules in chain_rules(cuts, losses).items():
        lines.append(f"\tchain {chain} {{")
        lines.append(f"\t\ttype filter hook {chain} priority {PRIORITY}; policy accept;")
        lines += [f"\t\t{rule}" for rule in rules]
        lines.append("\t}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def tbf_args(rate_bits: int) -> list[str]:
    """tc arguments of a token bucket at this rate (a burst of 10 ms, at least 2 frames)."""
    burst = max(rate_bits // 8 // 100, 3200)
    return ["tbf", "rate", f"{rate_bits}bit", "burst", str(burst), "latency", "100ms"]


def netem_args(delay_ms: int) -> list[str]:
    """tc arguments of a netem delay."""
    return ["netem", "delay", f"{delay_ms}ms"]


def qdisc_argv(dev: str, netns: Path | None, args: list[str] | None) -> list[str]:
    """`tc qdisc replace` of the root qdisc (args) or its `del` (None); inside a node's
    network namespace when `netns` is its pin."""
    prefix = ["nsenter", f"--net={netns}"] if netns is not None else []
    if args is None:
        return [*prefix, "tc", "qdisc", "del", "dev", dev, "root"]
    return [*prefix, "tc", "qdisc", "replace", "dev", dev, "root", *args]


class FaultRuntime(Protocol):
    """The kernel operations of faults (the real one below; unit tests use a fake)."""

    def apply_table(self, script: str) -> None: ...
    def delete_table(self, table: str) -> None: ...
    def set_qdisc(self, dev: str, netns: Path | None, args: list[str] | None) -> None: ...
    def set_frozen(self, group: str, frozen: bool) -> None: ...
    def kill(self, record: ProcessRecord) -> bool: ...


def delete_table(table: str) -> None:
    """Delete the cluster's nftables table; nothing if it (or nft) is not there."""
    try:
        run_command(["nft", "delete", "table", "bridge", table], timeout=30.0)
    except CommandError as err:
        if err.returncode == 127 or "No such file" in err.stderr:
            return
        raise


class LinuxFaultRuntime:
    """Implements FaultRuntime with nft, tc, the cgroup driver and kill(2)."""

    def __init__(self, cgroups: CgroupDriver) -> None:
        self.cgroups = cgroups

    def apply_table(self, script: str) -> None:
        try:
            run_command(["nft", "-f", "-"], input=script, timeout=30.0)
        except CommandError as err:
            if err.returncode == 127:
                raise MissingDependencyError(
                    "nft is not installed: network faults need nftables",
                    fix="apt-get install nftables") from None
            raise

    def delete_table(self, table: str) -> None:
        delete_table(table)

    def set_qdisc(self, dev: str, netns: Path | None, args: list[str] | None) -> None:
        try:
            run_command(qdisc_argv(dev, netns, args), timeout=30.0)
        except CommandError as err:
            if args is None and ("No such file" in err.stderr or "Cannot find" in err.stderr
                                 or "Invalid handle" in err.stderr):
                return  # nothing to delete (the link or its qdisc is gone already)
            if args and args[0] == "netem" and "unknown" in err.stderr:
                raise NetemMissingError(
                    "this kernel has no netem qdisc (module sch_netem): no delay faults",
                    fix="use 'rate' or 'loss' instead, or a kernel with CONFIG_NET_SCH_NETEM"
                ) from None
            raise

    def set_frozen(self, group: str, frozen: bool) -> None:
        self.cgroups.set_frozen(group, frozen)

    def kill(self, record: ProcessRecord) -> bool:
        """SIGKILL exactly this process (pid and start time); False if it is gone."""
        if not is_alive(record):
            return False
        try:
            os.kill(record.pid, signal.SIGKILL)
        except ProcessLookupError:
            return False
        return True
