"""Forward log rows as RFC 5424 syslog messages over TCP with octet counting (RFC 6587).

Each message: ``<PRI>1 TIMESTAMP HOSTNAME APP-NAME - - [vhpc@32473 cluster="c"] MSG``
framed as ``LEN SP MSG``. HOSTNAME is the node (the cluster name for cluster-wide
events), APP-NAME the service, so rsyslog/syslog-ng can file or relay by node and
daemon. 32473 is the enterprise number reserved for examples (RFC 5612). Off by default;
enabled with ``--syslog HOST:PORT``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime

from vhpc.observe.log_store import LogRecord
from vhpc.observe.tcpsink import TcpSender, parse_hostport

DEFAULT_PORT = 514
FACILITIES = {"kern": 0, "user": 1, "daemon": 3, "local0": 16, "local1": 17, "local7": 23}
SEVERITY = {"fatal": 2, "error": 3, "warning": 4, "notice": 5, "info": 6, "debug": 7}
SD_ID = "vhpc@32473"

_NON_PRINT = re.compile(r"[^\x21-\x7e]")


def _header_field(value: str, limit: int) -> str:
    """A NILVALUE-or-PRINTUSASCII header field of at most ``limit`` characters."""
    clean = _NON_PRINT.sub("_", value)[:limit]
    return clean or "-"


def _sd_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def format_rfc5424(record: LogRecord, cluster: str, facility: int = 3) -> bytes:
    """One record as an RFC 5424 message (without framing); an event's kind is the MSGID."""
    pri = facility * 8 + SEVERITY.get(record.level, 6)
    stamp = datetime.fromtimestamp(record.ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    host = _header_field(record.node or cluster, 255)
    app = _header_field(record.service, 48)
    sd = f'[{SD_ID} cluster="{_sd_value(cluster)}"]'
    msgid = _header_field(record.kind, 32) if record.kind else "-"  # an event's kind
    msg = record.message.replace("\r", " ").replace("\n", " ")
    return f"<{pri}>1 {stamp} {host} {app} - {msgid} {sd} {msg}".encode()


def frame(message: bytes) -> bytes:
    """RFC 6587 octet-counting framing: ``MSG-LEN SP SYSLOG-MSG``."""
    return str(len(message)).encode() + b" " + message


class SyslogForwarder:
    """Ships records to one syslog receiver; never blocks the caller."""

    def __init__(self, target: str, cluster: str, facility: str = "daemon") -> None:
        host, port = parse_hostport(target, DEFAULT_PORT)
        if facility not in FACILITIES:
            raise ValueError(f"unknown syslog facility {facility!r}")
        self.cluster = cluster
        self.facility = FACILITIES[facility]
        self.sender = TcpSender(host, port, name="syslog")

    def forward(self, records: Iterable[LogRecord]) -> None:
        """Queue records for sending."""
        data = b"".join(frame(format_rfc5424(r, self.cluster, self.facility)) for r in records)
        if data:
            self.sender.send(data)

    def close(self) -> None:
        """Flush briefly and stop."""
        self.sender.close()
