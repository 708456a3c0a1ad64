"""Whether a TCP port listens in a node's network namespace, asked of the kernel's socket
diagnostics (netlink NETLINK_SOCK_DIAG, listening sockets only), without connecting.

A probe connection is not free: slurmctld logs an error for every connection that sends
nothing ("Zero Bytes were transmitted or received"), and `scontrol ping` costs a process
and a munge credential per poll. /proc/PID/net/tcp is no better: the kernel walks its
whole connection hash table to print it, ~7 ms on a 24 GB host. A diagnostics query for
listening sockets reads only the listening table: microseconds.

The netlink socket is made in a short-lived thread that joins the node's network
namespace (setns applies to the calling thread alone; a socket stays in the namespace it
was made in), so the manager's own threads never change namespace. slurmctld and slurmdbd
open their RPC port once their state and database are loaded, so a listening port is a
daemon that takes requests.
"""

from __future__ import annotations

import ctypes
import logging
import os
import socket
import struct
import threading
from collections.abc import Callable
from pathlib import Path

CLONE_NEWNET = 0x40000000
NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
TCP_LISTEN = 10
#: nlmsghdr, then inet_diag_req_v2 (family, protocol, ext, pad, states, a zero sockid)
_HEADER = struct.Struct("=IHHII")
_REQUEST = struct.Struct("=BBBBI48x")
_SPORT = struct.Struct("!H")  # inet_diag_msg's id.sport, after its 4 bytes of flags

_libc = ctypes.CDLL(None, use_errno=True)
log = logging.getLogger(__name__)


class Listening:
    """Asks, as often as wanted, whether ports listen in one network namespace."""

    def __init__(self, netns: Path) -> None:
        self.sock = _diag_socket(netns)
        self._seq = 0

    def __enter__(self) -> Listening:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the netlink socket."""
        self.sock.close()

    def ports(self) -> set[int]:
        """The TCP ports (IPv4 and IPv6) that a socket listens on."""
        found: set[int] = set()
        for family in (socket.AF_INET, socket.AF_INET6):
            found |= self._dump(family)
        return found

    def listens(self, port: int) -> bool:
        """True if a socket listens on TCP `port` (any address)."""
        return port in self.ports()

    def _dump(self, family: int) -> set[int]:
        self._seq += 1
        body = _REQUEST.pack(family, socket.IPPROTO_TCP, 0, 0, 1 << TCP_LISTEN)
        self.sock.send(_HEADER.pack(_HEADER.size + len(body), SOCK_DIAG_BY_FAMILY,
                                    NLM_F_REQUEST | NLM_F_DUMP, self._seq, 0) + body)
        ports: set[int] = set()
        while True:
            data = self.sock.recv(65536)
            offset = 0
            while offset + _HEADER.size <= len(data):
                length, kind, _, _, _ = _HEADER.unpack_from(data, offset)
                if kind == NLMSG_DONE:
                    return ports
                if kind == NLMSG_ERROR:
                    raise OSError(f"socket diagnostics refused the query (family {family})")
                ports.add(_SPORT.unpack_from(data, offset + _HEADER.size + 4)[0])
                offset += (length + 3) & ~3
            if not data:
                return ports


def _diag_socket(netns: Path) -> socket.socket:
    """A NETLINK_SOCK_DIAG socket in the network namespace pinned at `netns`."""
    made: list[socket.socket] = []
    failed: list[OSError] = []

    def make() -> None:
        try:
            fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns({netns}): {os.strerror(err)}")
            finally:
                os.close(fd)
            made.append(socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM,
                                      NETLINK_SOCK_DIAG))
        except OSError as err:
            failed.append(err)

    thread = threading.Thread(target=make, name="netns-diag")
    thread.start()
    thread.join()
    if failed:
        raise failed[0]
    return made[0]


class PortCheck:
    """A check, called until it is true, that TCP `port` listens in the namespace pinned
    at `netns`; its netlink socket is made at the first call and closed at the true one
    (else when the check is dropped). A kernel without socket diagnostics for TCP (no
    inet_diag) gets `fallback` instead, from the first failed query on."""

    def __init__(self, netns: Path, port: int, fallback: Callable[[], bool]) -> None:
        self.netns = netns
        self.port = port
        self.fallback = fallback
        self._probe: Listening | None = None
        self._diagnostics = True

    def __call__(self) -> bool:
        if not self._diagnostics:
            return self.fallback()
        try:
            if self._probe is None:
                self._probe = Listening(self.netns)
            if not self._probe.listens(self.port):
                return False
        except OSError as err:
            log.warning("socket diagnostics failed (%s): probing port %d another way",
                        err, self.port)
            self._diagnostics = False
            self._close()
            return self.fallback()
        self._close()
        return True

    def _close(self) -> None:
        if self._probe is not None:
            self._probe.close()
            self._probe = None
