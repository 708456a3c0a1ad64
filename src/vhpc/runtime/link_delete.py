"""Delete many network links by name over rtnetlink, in one batch of the kernel's.

Deleting links one by one (`ip -batch` of `link del`) costs the kernel an unregister
round each, RCU grace periods included: 300 veths took 5.4 s on this machine. The links
are instead put into a netdev group of their own (a cheap attribute change each), and one
RTM_DELLINK of that group unregisters them all at once (0.1 s for 300). The group is a
random number no link of the host has; group 0, every link's default, is never deleted.
Links are named by IFLA_IFNAME (no index read first that a new link could reuse), every
request is acknowledged, and a link that is already gone (ENODEV) counts as deleted.
No process is started: right after a step across 1024 nodes the host runs hundreds of
runnable tasks, and starting `ip` took seconds.
"""

from __future__ import annotations

import errno
import os
import random
import socket
import struct
from collections.abc import Iterable
from pathlib import Path

RTM_NEWLINK = 16  # RTM_BASE (linux/rtnetlink.h): changes an existing link's attributes
RTM_DELLINK = 16 + 1
NLMSG_ERROR = 2
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
IFLA_IFNAME = 3
IFLA_GROUP = 27
BATCH = 128  # requests per send: their acks fit any receive buffer
_HEADER = struct.Struct("=IHHII")  # nlmsghdr: len, type, flags, seq, pid
_IFINFO = struct.Struct("=BxHiII")  # ifinfomsg: family, type, index, flags, change
_ATTR = struct.Struct("=HH")  # rtattr: len, type
_ERROR = struct.Struct("=i")  # nlmsgerr's error, after the header


def _align(n: int) -> int:
    return (n + 3) & ~3


def _attr(kind: int, value: bytes) -> bytes:
    attr = _ATTR.pack(_ATTR.size + len(value), kind) + value
    return attr + b"\0" * (_align(len(attr)) - len(attr))


def link_request(kind: int, seq: int, name: str | None = None, group: int | None = None
                 ) -> bytes:
    """One RTM_NEWLINK or RTM_DELLINK message: the link called `name` (its group set to
    `group`), or with no name every link of `group`."""
    attrs = b""
    if name is not None:
        attrs += _attr(IFLA_IFNAME, os.fsencode(name) + b"\0")
    if group is not None:
        attrs += _attr(IFLA_GROUP, struct.pack("=I", group))
    body = _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + attrs
    return _HEADER.pack(_HEADER.size + len(body), kind, NLM_F_REQUEST | NLM_F_ACK,
                        seq, 0) + body


def parse_acks(data: bytes) -> dict[int, int]:
    """The acknowledgements in a netlink reply: {sequence number: errno (0: done)}."""
    acks: dict[int, int] = {}
    offset = 0
    while offset + _HEADER.size <= len(data):
        length, kind, _, seq, _ = _HEADER.unpack_from(data, offset)
        if length < _HEADER.size:
            break
        if kind == NLMSG_ERROR:
            acks[seq] = -_ERROR.unpack_from(data, offset + _HEADER.size)[0]
        offset += _align(length)
    return acks


def _send_all(sock: socket.socket, requests: list[bytes]) -> dict[int, int]:
    """Send requests (sequence numbers 1..n) in batches; {seq: errno} of each."""
    acks: dict[int, int] = {}
    for start in range(0, len(requests), BATCH):
        sock.sendall(b"".join(requests[start:start + BATCH]))
        waiting = set(range(start + 1, min(start + BATCH, len(requests)) + 1))
        while waiting:
            for seq, err in parse_acks(sock.recv(1 << 16)).items():
                if seq in waiting:
                    waiting.discard(seq)
                    acks[seq] = err
    return acks


def unused_group(used: Iterable[int], rng: random.Random | None = None) -> int:
    """A netdev group number that none of `used` is (never 0, the default group)."""
    taken = set(used)
    pick = (rng or random.SystemRandom()).randrange
    while (group := pick(1 << 20, 1 << 31)) in taken:
        pass
    return group


def host_groups(root: Path = Path("/sys/class/net")) -> list[int]:
    """The netdev groups of the host's links."""
    groups = []
    for link in root.iterdir():
        try:
            groups.append(int((link / "netdev_group").read_text()))
        except (OSError, ValueError):
            continue
    return groups


def delete_links(names: list[str]) -> dict[str, int]:
    """Delete the links; {name: errno} of those that could not go (gone already is fine)."""
    if not names:
        return {}
    group = unused_group(host_groups())
    assert group != 0  # group 0 holds every link of the host
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as sock:
        sock.bind((0, 0))
        grouped = _send_all(sock, [link_request(RTM_NEWLINK, seq, name, group)
                                   for seq, name in enumerate(names, start=1)])
        err = _send_all(sock, [link_request(RTM_DELLINK, 1, group=group)])[1]
        failed = {names[seq - 1]: e for seq, e in grouped.items() if e not in (0, errno.ENODEV)}
        if err not in (0, errno.ENODEV):  # one by one then (what was grouped is not gone)
            left = [n for seq, n in enumerate(names, start=1) if grouped.get(seq) == 0]
            dels = _send_all(sock, [link_request(RTM_DELLINK, seq, name)
                                    for seq, name in enumerate(left, start=1)])
            failed |= {left[seq - 1]: e for seq, e in dels.items()
                       if e not in (0, errno.ENODEV)}
    return failed
