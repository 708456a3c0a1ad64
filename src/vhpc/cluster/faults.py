"""Faults as pure data: what a fault is, its checks against the cluster, the book of the
active ones, and the network rules they add up to (no I/O here).

A fault is injected on purpose (`vhpc fault ...`): a network partition, packet loss, a rate
limit or a delay on a node's link, a frozen node (its cgroup in the freezer: hung, not
dead), or a SIGKILL of one supervised daemon. Every fault but a kill stays active until it
is cleared; `FaultBook` holds them (persisted as JSON by the controller,
cluster/fault_control.py) and `net_rules` turns the active network faults into the rules of
the cluster's own nftables table (runtime/netfault.py renders them).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Any

from vhpc.errors import ClusterStateError, FaultError, NoSuchFaultError
from vhpc.runtime.netfault import Cut, Loss
from vhpc.spec.model import ClusterSpec

CONTROLLER_ALIAS = "controller"
MIN_RATE = 8_000  # bits/s: below this tbf cannot hold one packet per second
MAX_RATE = 100_000_000_000  # 100 Gbit/s
MAX_DELAY_MS = 60_000
RATE_UNITS = {"bit": 1, "kbit": 1_000, "mbit": 1_000_000, "gbit": 1_000_000_000,
              "bps": 8, "kbps": 8_000, "mbps": 8_000_000, "gbps": 8_000_000_000}
RATE_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*([a-z]+)$")


class FaultKind(StrEnum):
    """What a fault does (the same values as vhpc.models.FaultKind)."""

    PARTITION = "partition"
    LOSS = "loss"
    RATE = "rate"
    DELAY = "delay"
    FREEZE = "freeze"
    KILL = "kill"


#: kinds that take a node's link (its root qdisc: one of them per node)
QDISC_KINDS = (FaultKind.RATE, FaultKind.DELAY)


@dataclass(frozen=True)
class FaultSpec:
    """A fault as asked for, after its checks (nodes resolved, values in range)."""

    kind: FaultKind
    nodes: tuple[str, ...] = ()
    peers: tuple[str, ...] = ()  # partition: () = from everything (other nodes and host)
    percent: float | None = None
    rate: str = ""
    delay_ms: int | None = None
    daemon: str = ""


@dataclass(frozen=True)
class ActiveFault:
    """A fault with its id and when it began."""

    id: str
    spec: FaultSpec
    since: float

    def describe(self) -> str:
        """One line saying what the fault does."""
        s = self.spec
        nodes = ",".join(s.nodes)
        match s.kind:
            case FaultKind.PARTITION:
                return f"{nodes} cut off from {','.join(s.peers) if s.peers else 'everything'}"
            case FaultKind.LOSS:
                return f"{nodes} loses {s.percent:g}% of its packets (each direction)"
            case FaultKind.RATE:
                return f"{nodes} link limited to {s.rate} (each direction)"
            case FaultKind.DELAY:
                return f"{nodes} link delayed by {s.delay_ms} ms"
            case FaultKind.FREEZE:
                return f"{nodes} frozen (cgroup freezer)"
            case FaultKind.KILL:
                return f"{s.daemon} killed (SIGKILL)"
        return s.kind.value

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (faults.json; the API's Fault model has the same fields)."""
        spec = asdict(self.spec)
        spec.update(kind=self.spec.kind.value, nodes=list(self.spec.nodes),
                    peers=list(self.spec.peers))
        return {"id": self.id, **spec, "since": self.since, "active": self.spec.kind
                is not FaultKind.KILL, "description": self.describe()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ActiveFault:
        """Read back what to_dict wrote."""
        spec = FaultSpec(FaultKind(data["kind"]), tuple(data.get("nodes", ())),
                         tuple(data.get("peers", ())), data.get("percent"),
                         str(data.get("rate", "")), data.get("delay_ms"),
                         str(data.get("daemon", "")))
        return cls(str(data["id"]), spec, float(data["since"]))


@dataclass
class FaultBook:
    """The active faults, oldest first, and the next id (ids are never reused)."""

    faults: list[ActiveFault] = field(default_factory=list)
    next_id: int = 1

    def add(self, spec: FaultSpec, now: float) -> ActiveFault:
        """Record a fault (a kill too: it gets an id, but is not kept)."""
        fault = ActiveFault(f"f{self.next_id}", spec, now)
        self.next_id += 1
        if spec.kind is not FaultKind.KILL:
            self.faults.append(fault)
        return fault

    def select(self, fault_id: str | None = None, kind: FaultKind | None = None,
               nodes: Iterable[str] = ()) -> list[ActiveFault]:
        """Active faults by id, or by kind and/or the nodes they touch; all with none."""
        if fault_id is not None:
            found = [f for f in self.faults if f.id == fault_id]
            if not found:
                known = ", ".join(f.id for f in self.faults) or "none"
                raise NoSuchFaultError(f"no active fault {fault_id!r} (active: {known})",
                                       fix="list them with 'vhpc fault ls'")
            return found
        wanted = set(nodes)
        return [f for f in self.faults if (kind is None or f.spec.kind is kind)
                and (not wanted or wanted & set(f.spec.nodes))]

    def remove(self, faults: Iterable[ActiveFault]) -> None:
        """Forget these faults (after they were undone)."""
        ids = {f.id for f in faults}
        self.faults = [f for f in self.faults if f.id not in ids]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"next_id": self.next_id, "faults": [f.to_dict() for f in self.faults]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FaultBook:
        """Read back what to_dict wrote."""
        return cls([ActiveFault.from_dict(f) for f in data.get("faults", [])],
                   int(data.get("next_id", 1)))


def parse_rate(text: str) -> int:
    """A tc rate ('10mbit', '512kbit', '1gbit', '100mbps' = bytes) in bits per second."""
    m = RATE_RE.match(text.strip().lower())
    if not m or m.group(2) not in RATE_UNITS:
        raise FaultError(f"rate {text!r} is not a rate",
                         fix="give a number and a unit: 10mbit, 512kbit, 1gbit (or kbps/mbps "
                             "for bytes)")
    bits = int(float(m.group(1)) * RATE_UNITS[m.group(2)])
    if not MIN_RATE <= bits <= MAX_RATE:
        raise FaultError(f"rate {text!r} is out of range (8kbit to 100gbit)",
                         fix="give a rate between 8kbit and 100gbit")
    return bits


def check_request(spec: FaultSpec, cluster: ClusterSpec, book: FaultBook,
                  daemons: Iterable[str]) -> FaultSpec:
    """The fault with its nodes resolved, or a one-line error (unknown node, stopped node,
    value out of range, unknown daemon, a conflict with an active fault)."""
    if spec.kind is FaultKind.KILL:
        return replace(spec, daemon=resolve_daemon(spec.daemon, list(daemons)))
    nodes = _running_nodes(spec.nodes, cluster, "nodes")
    peers: tuple[str, ...] = ()
    if spec.kind is FaultKind.PARTITION:
        peers = _running_nodes(tuple(cluster.controller.name if p == CONTROLLER_ALIAS else p
                                     for p in spec.peers), cluster, "--from", empty_ok=True)
        if set(peers) & set(nodes):
            raise FaultError("a partition cannot cut a node from itself: "
                             f"{', '.join(sorted(set(peers) & set(nodes)))} on both sides",
                             fix="name different nodes in NODES and --from")
    elif spec.kind is FaultKind.LOSS:
        if spec.percent is None or not 0 < spec.percent <= 100:
            raise FaultError(f"loss of {spec.percent}% is out of range",
                             fix="give a percentage above 0 and at most 100")
    elif spec.kind is FaultKind.RATE:
        parse_rate(spec.rate)
    elif spec.kind is FaultKind.DELAY and (spec.delay_ms is None
                                           or not 0 < spec.delay_ms <= MAX_DELAY_MS):
        raise FaultError(f"a delay of {spec.delay_ms} ms is out of range",
                         fix=f"give milliseconds between 1 and {MAX_DELAY_MS}")
    checked = replace(spec, nodes=nodes, peers=peers)
    _check_conflicts(checked, book)
    return checked


def _running_nodes(names: tuple[str, ...], cluster: ClusterSpec, what: str,
                   empty_ok: bool = False) -> tuple[str, ...]:
    from vhpc.spec.grow import NoSuchNodeError

    if not names and not empty_ok:
        raise FaultError(f"no node named in {what}", fix="name one or more nodes: compute1,"
                                                         "compute2")
    by_name = {n.name: n for n in cluster.nodes}
    out: list[str] = []
    for name in names:
        node = by_name.get(name)
        if node is None:
            raise NoSuchNodeError(f"cluster {cluster.name!r} has no node {name!r}",
                                  fix="see its nodes with 'vhpc status'")
        if node.stopped:
            raise ClusterStateError(f"node {name!r} is stopped: a fault needs a running node",
                                    fix=f"start it first: vhpc node start {name}")
        if name not in out:
            out.append(name)
    return tuple(out)


def _check_conflicts(spec: FaultSpec, book: FaultBook) -> None:
    """One fault of a kind per node (one root qdisc per link: rate and delay exclude
    each other); partitions may overlap."""
    if spec.kind is FaultKind.PARTITION:
        return
    kinds = QDISC_KINDS if spec.kind in QDISC_KINDS else (spec.kind,)
    for fault in book.faults:
        both = set(fault.spec.nodes) & set(spec.nodes)
        if fault.spec.kind in kinds and both:
            raise FaultError(f"{', '.join(sorted(both))} already has fault {fault.id} "
                             f"({fault.describe()})",
                             fix=f"clear it first: vhpc fault clear {fault.id}")


def resolve_daemon(name: str, daemons: list[str]) -> str:
    """'slurmd@compute3' as given, or 'munged' when exactly one such daemon runs."""
    if name in daemons:
        return name
    matches = [d for d in daemons if d.split("@", 1)[0] == name] if "@" not in name else []
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise FaultError(f"{name!r} runs on {len(matches)} nodes",
                         fix=f"name one: {', '.join(matches[:4])}")
    names = sorted({d.split("@", 1)[0] for d in daemons})
    raise FaultError(f"no supervised daemon {name!r} in this cluster",
                     fix=f"name one as DAEMON@NODE; daemons: {', '.join(names)}")


def split_per_node(spec: FaultSpec) -> list[FaultSpec]:
    """A node fault (loss, rate, delay, freeze) is kept per node, so 'thaw compute2' or
    clearing one node leaves the others; a partition stays one fault (a set of nodes)."""
    if spec.kind in (FaultKind.PARTITION, FaultKind.KILL):
        return [spec]
    return [replace(spec, nodes=(n,)) for n in spec.nodes]


def net_rules(faults: Iterable[ActiveFault], veth_of: Callable[[str], str],
              addr_of: Callable[[str], str] | None = None) -> tuple[list[Cut], list[Loss]]:
    """The nftables cuts and losses the active faults add up to (host-side veth names;
    with `addr_of`, the nodes' addresses too, so cuts hold across leaf bridges)."""
    cuts: list[Cut] = []
    losses: list[Loss] = []
    for fault in faults:
        s = fault.spec
        if s.kind is FaultKind.PARTITION:
            addrs: Callable[[tuple[str, ...]], tuple[str, ...]] = (
                (lambda names: tuple(addr_of(n) for n in names)) if addr_of
                else (lambda names: ()))
            cuts.append(Cut(fault.id, tuple(veth_of(n) for n in s.nodes),
                            tuple(veth_of(p) for p in s.peers),
                            addrs(s.nodes), addrs(s.peers)))
        elif s.kind is FaultKind.LOSS and s.percent is not None:
            losses.extend(Loss(fault.id, veth_of(n), s.percent) for n in s.nodes)
    return cuts, losses
