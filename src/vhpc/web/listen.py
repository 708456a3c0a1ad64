"""Where the dashboard/API listens on TCP, its API token, and which Host names it answers.

Light on purpose (no FastAPI): the CLI checks ``--listen`` and reads the token with it.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path

from vhpc.errors import SpecError
from vhpc.spec.paths import ClusterPaths

DEFAULT_LISTEN = "127.0.0.1:0"
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


def parse_listen(text: str) -> tuple[str, int]:
    """'ADDR:PORT' (or ':PORT', or 'ADDR') -> (addr, port); port 0 means any."""
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = text, "0"
    host = host.strip("[]") or "127.0.0.1"
    try:
        ipaddress.ip_address(host)
        port = int(port_text or "0")
    except ValueError as err:
        raise SpecError(f"invalid --listen {text!r}: use ADDR:PORT, e.g. 0.0.0.0:8080") from err
    if not 0 <= port <= 65535:
        raise SpecError(f"invalid --listen {text!r}: port out of range")
    return host, port


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8 and ::1."""
    return ipaddress.ip_address(host).is_loopback


def token_file(paths: ClusterPaths) -> Path:
    """<state>/run/token (mode 0600)."""
    return paths.run / "token"


def ensure_token(paths: ClusterPaths) -> str:
    """The cluster's API token, created on first use (kept across manager restarts)."""
    path = token_file(paths)
    if path.exists():
        token = path.read_text().strip()
        if token:
            return token
    token = secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    os.chmod(path, 0o600)
    return token


@dataclass(frozen=True)
class TcpAccess:
    """What a TCP request must present: the token, and a Host header naming us."""

    token: str
    hosts: frozenset[str]  # accepted Host header values, "name:port" (lower case)

    def host_allowed(self, header: str) -> bool:
        """True if a Host header names this listener (DNS rebinding protection)."""
        return header.strip().lower() in self.hosts


def allowed_hosts(listen_host: str, port: int) -> frozenset[str]:
    """Host header values the TCP listener answers: its address, loopback names, and for
    a wildcard address the host's own name and addresses."""
    names = set(LOOPBACK_NAMES)
    names.add(f"[{listen_host}]" if ":" in listen_host else listen_host)
    if listen_host in ("0.0.0.0", "::"):
        hostname = socket.gethostname()
        names.update({hostname, socket.getfqdn()})
        try:
            names.update(str(info[4][0]) for info in socket.getaddrinfo(hostname, None))
        except OSError:
            pass
    out = set()
    for name in names:
        shown = f"[{name}]" if ":" in name and not name.startswith("[") else name
        out.add(f"{shown.lower()}:{port}")
    return frozenset(out)


def dashboard_url(listen_host: str, port: int, token: str) -> str:
    """The URL to print: the dashboard with its token (the page sends it on every call)."""
    shown = socket.gethostname() if listen_host in ("0.0.0.0", "::") else \
        f"[{listen_host}]" if ":" in listen_host else listen_host
    return f"http://{shown}:{port}/?token={token}"
