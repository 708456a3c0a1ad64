"""Read a node's network counters from the host side of its veth pair.

The host-side veth sees the node's traffic mirrored: what the node sends arrives on
the host side (host rx), so node tx = host-side rx and node rx = host-side tx.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SYS_CLASS_NET = Path("/sys/class/net")


@dataclass(frozen=True)
class NetStats:
    """Byte and packet counters from the node's point of view."""

    rx_bytes: int = 0
    tx_bytes: int = 0
    rx_packets: int = 0
    tx_packets: int = 0


def _counter(stats_dir: Path, name: str) -> int:
    try:
        return int((stats_dir / name).read_text().strip())
    except (OSError, ValueError):
        return 0


def read_veth(veth: str | None, net_root: Path = SYS_CLASS_NET) -> NetStats:
    """Counters of host-side ``veth`` under ``net_root``, swapped to the node's view."""
    if not veth or "/" in veth or veth in (".", ".."):
        return NetStats()
    stats_dir = net_root / veth / "statistics"
    return NetStats(
        rx_bytes=_counter(stats_dir, "tx_bytes"),
        tx_bytes=_counter(stats_dir, "rx_bytes"),
        rx_packets=_counter(stats_dir, "tx_packets"),
        tx_packets=_counter(stats_dir, "rx_packets"),
    )
