"""Network endpoints a user names (--listen, --graphite, --syslog), checked before boot.

Pure: the host's addresses are passed in. Every function raises a one-line SpecError
that names the option, what is wrong and an example of a good value.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Collection, Mapping

from vhpc.errors import SpecError

MAX_ENDPOINT_LENGTH = 300
GRAPHITE_DEFAULT_PORT = 2003
SYSLOG_DEFAULT_PORT = 514
_LABEL_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_PORT_RE = re.compile(r"^[0-9]{1,5}$")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _split(text: str, option: str, example: str) -> tuple[str, str]:
    """'host:port', '[v6]:port', 'host' -> (host, port text or '')."""
    if len(text) > MAX_ENDPOINT_LENGTH:
        raise SpecError(f"invalid {option}: longer than {MAX_ENDPOINT_LENGTH} characters; "
                        f"use HOST:PORT, e.g. {example}")
    text = text.strip()
    if text.startswith("["):
        end = text.find("]")
        rest = text[end + 1:] if end > 0 else "?"
        if end < 0 or (rest and not rest.startswith(":")):
            raise SpecError(f"invalid {option} {text!r}: use [ADDR]:PORT, e.g. [::1]:{example}")
        return text[1:end], rest[1:]
    host, sep, port = text.rpartition(":")
    if not sep or ":" in host:  # no port, or a bare IPv6 address
        return text, ""
    return host, port


def _port(text: str, option: str, whole: str, example: str, allow_zero: bool) -> int:
    low = 0 if allow_zero else 1
    if not _PORT_RE.fullmatch(text) or not low <= int(text) <= 65535:
        raise SpecError(f"invalid {option} {whole!r}: the port must be a number from {low} to "
                        f"65535, e.g. {example}")
    return int(text)


def is_hostname(host: str) -> bool:
    """True for an RFC 1123 host name (dotted labels, at most 253 characters)."""
    return 0 < len(host) <= 253 and all(_LABEL_RE.fullmatch(p) for p in host.rstrip(".").split("."))


def parse_listen(text: str) -> tuple[str, int]:
    """'ADDR:PORT' (or ':PORT', or 'ADDR') -> (addr, port); port 0 means any; syntax only."""
    example = "0.0.0.0:8080"
    host, port_text = _split(text, "--listen", example)
    host = host or "127.0.0.1"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise SpecError(f"invalid --listen {text!r}: the address must be an IP address of "
                        f"this host, e.g. {example} or 127.0.0.1:8080") from None
    return host, _port(port_text or "0", "--listen", text, example, allow_zero=True)


def check_listen(text: str, host_addresses: Collection[IPAddress]) -> tuple[str, int]:
    """parse_listen, and refuse an address this host does not have (it could not bind)."""
    host, port = parse_listen(text)
    address = ipaddress.ip_address(host)
    if address.is_unspecified or address.is_loopback or address in set(host_addresses):
        return host, port
    have = ", ".join(sorted({str(a) for a in host_addresses})[:6]) or "none found"
    raise SpecError(f"invalid --listen {text!r}: {host} is not an address of this host "
                    f"(it has {have}); use one of them, 0.0.0.0 or 127.0.0.1")


def parse_remote(text: str, option: str, default_port: int) -> tuple[str, int]:
    """'HOST:PORT' of a remote server (IP or DNS name; port defaults) -> (host, port)."""
    example = f"server.example.org:{default_port}"
    host, port_text = _split(text, option, example)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not is_hostname(host):
            raise SpecError(f"invalid {option} {text!r}: {host!r} is neither an IP address nor "
                            f"a host name; use HOST:PORT, e.g. {example}") from None
    port = _port(port_text, option, text, example, False) if port_text else default_port
    return host, port


def check_endpoints(options: Mapping[str, str], host_addresses: Collection[IPAddress]) -> None:
    """Validate the endpoint options of a cluster (spec.options) before anything is made."""
    if options.get("listen"):
        check_listen(options["listen"], host_addresses)
    if options.get("graphite"):
        parse_remote(options["graphite"], "--graphite", GRAPHITE_DEFAULT_PORT)
    if options.get("syslog"):
        parse_remote(options["syslog"], "--syslog", SYSLOG_DEFAULT_PORT)
