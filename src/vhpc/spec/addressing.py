"""Address slots inside a cluster subnet: .1 host, .2 controller, .3 dns, computes from .10."""

from __future__ import annotations

import ipaddress

from vhpc.errors import SpecError

HOST_SLOT = 1
CONTROLLER_SLOT = 2
DNS_SLOT = 3
DB_SLOT = 4  # MariaDB + slurmdbd (accounting)
FIRST_COMPUTE_SLOT = 10
DEFAULT_POOL = ipaddress.IPv4Network("10.201.0.0/16")
# A cluster's subnet is private: RFC 1918 and the shared address space of RFC 6598.
PRIVATE_RANGES = (
    ipaddress.IPv4Network("10.0.0.0/8"),
    ipaddress.IPv4Network("172.16.0.0/12"),
    ipaddress.IPv4Network("192.168.0.0/16"),
    ipaddress.IPv4Network("100.64.0.0/10"),
)


def compute_capacity(subnet: ipaddress.IPv4Network) -> int:
    """How many compute nodes fit in a subnet."""
    return max(0, subnet.num_addresses - 1 - FIRST_COMPUTE_SLOT)


def with_headroom(count: int) -> int:
    """Compute nodes a default subnet leaves room for: half as many again as asked, so a
    large cluster can grow by `node add` (a 768-node cluster takes 256 more)."""
    return count + count // 2


def smallest_prefix_for(count: int) -> int:
    """The longest prefix whose subnet holds `count` compute nodes."""
    prefix = 30
    while prefix > 8 and compute_capacity(ipaddress.IPv4Network(f"10.0.0.0/{prefix}")) < count:
        prefix -= 1
    return prefix


def check_capacity(subnet: ipaddress.IPv4Network, computes: int) -> None:
    """Refuse a subnet too small for the number of compute nodes."""
    capacity = compute_capacity(subnet)
    if computes > capacity:
        need = smallest_prefix_for(computes)
        raise SpecError(
            f"subnet {subnet} holds at most {capacity} compute nodes, {computes} asked: "
            f"use --subnet {subnet.network_address}/{need} (or a larger one)"
        )


def free_compute_slots(subnet: ipaddress.IPv4Network, used: set[int], count: int) -> list[int]:
    """The first `count` free compute slots, or a SpecError that says the subnet is full."""
    last = subnet.num_addresses - 2
    free = [s for s in range(FIRST_COMPUTE_SLOT, last + 1) if s not in used][:count]
    if len(free) < count:
        raise SpecError(
            f"subnet {subnet} has room for {len(free)} more compute nodes, {count} asked: "
            "recreate the cluster with a larger --subnet"
        )
    return free


def pick_subnet(
    taken: list[ipaddress.IPv4Network], prefix: int, pool: ipaddress.IPv4Network = DEFAULT_POOL
) -> ipaddress.IPv4Network:
    """The first subnet of `pool` with this prefix that overlaps none of `taken`."""
    if prefix < pool.prefixlen:
        raise SpecError(f"a /{prefix} does not fit in the default pool {pool}: pass a private "
                        f"--subnet of that size, e.g. --subnet 10.0.0.0/{prefix}")
    for candidate in pool.subnets(new_prefix=prefix):
        if not any(candidate.overlaps(t) for t in taken):
            return candidate
    raise SpecError(f"no free /{prefix} left in {pool}: pass --subnet explicitly")


def check_private(subnet: ipaddress.IPv4Network) -> None:
    """Refuse a subnet outside the private ranges (loopback, multicast, public, link-local)."""
    if not any(subnet.subnet_of(r) for r in PRIVATE_RANGES):
        ranges = ", ".join(str(r) for r in PRIVATE_RANGES)
        raise SpecError(f"subnet {subnet} is not a private range: use one inside {ranges}, "
                        "e.g. --subnet 10.201.3.0/24")


def check_host_addresses(subnet: ipaddress.IPv4Network,
                         addresses: tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...]
                         ) -> None:
    """Refuse a subnet that holds an address the host already has on an interface."""
    clash = next((a for a in addresses if a.version == 4 and a in subnet), None)
    if clash is not None:
        raise SpecError(f"subnet {subnet} holds {clash}, an address of this host: pick another "
                        "--subnet")
