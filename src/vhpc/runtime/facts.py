"""Facts about the host: online CPUs, memory, routes in use, root, installed binaries."""

from __future__ import annotations

import ipaddress
import json
import os
import shutil

from vhpc.errors import MissingDependencyError, NotRootError
from vhpc.runtime.hostops import run_command
from vhpc.spec import users
from vhpc.spec.load import HostFacts
from vhpc.spec.placement import parse_cpulist

# binary -> Debian package that ships it
REQUIRED_BINARIES = {
    "slurmctld": "slurmctld",
    "slurmd": "slurmd",
    "sinfo": "slurm-client",
    "munged": "munge",
    "ip": "iproute2",
    "nsenter": "util-linux",
    "unshare": "util-linux",
    "setpriv": "util-linux",
    "etcd": "etcd-server",
    "etcdctl": "etcd-client",
    "dnsmasq": "dnsmasq-base",
}


def online_cpus() -> tuple[int, ...]:
    """CPUs that are online and that this process may run on."""
    with open("/sys/devices/system/cpu/online") as f:
        online = set(parse_cpulist(f.read().strip()))
    allowed = os.sched_getaffinity(0)
    return tuple(sorted(online & allowed)) or tuple(sorted(online))


def mem_total() -> int:
    """MemTotal of /proc/meminfo in bytes."""
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no MemTotal in /proc/meminfo")


def taken_subnets() -> tuple[ipaddress.IPv4Network, ...]:
    """IPv4 networks of the host's routes (a cluster subnet must not overlap them)."""
    out = run_command(["ip", "-j", "-4", "route", "show", "table", "all"], check=False).stdout
    nets: list[ipaddress.IPv4Network] = []
    for route in json.loads(out or "[]"):
        dst = route.get("dst", "")
        if dst in ("", "default") or route.get("type") in ("local", "broadcast"):
            continue
        try:
            nets.append(ipaddress.IPv4Network(dst, strict=False))
        except ValueError:
            continue
    return tuple(nets)


def host_addresses() -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...]:
    """Every address on the host's interfaces (a --listen address must be one of them)."""
    out = run_command(["ip", "-j", "addr", "show"], check=False).stdout
    found: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    for link in json.loads(out or "[]"):
        for info in link.get("addr_info", []):
            try:
                found.append(ipaddress.ip_address(info.get("local", "")))
            except ValueError:
                continue
    return tuple(found)


def link_names() -> frozenset[str]:
    """Names of the host's network interfaces (a cluster's link names must be free)."""
    return frozenset(os.listdir("/sys/class/net"))


def gather(cluster_ids: frozenset[str] = frozenset()) -> HostFacts:
    """All facts the spec layer needs (`cluster_ids`: those of the clusters on the host)."""
    return HostFacts(online_cpus=online_cpus(), mem_total=mem_total(),
                     taken_subnets=taken_subnets(), host_addresses=host_addresses(),
                     links=link_names(), cluster_ids=cluster_ids, host_ids=host_ids())


def host_ids() -> frozenset[int]:
    """Every uid and gid of the host's passwd and group files (cluster users avoid them)."""
    texts = []
    for path in ("/etc/passwd", "/etc/group"):
        try:
            with open(path) as f:
                texts.append(f.read())
        except OSError:
            continue
    return users.ids_in_files(*texts)


def require_root(action: str) -> None:
    """Refuse to go on without root, saying why."""
    if os.geteuid() != 0:
        raise NotRootError(
            f"{action} needs root (namespaces, cgroups, bridges): run it with sudo or as root"
        )


def require_binaries(binaries: dict[str, str] = REQUIRED_BINARIES) -> None:
    """Refuse to go on if a needed program is missing, naming the Debian packages."""
    missing = sorted({pkg for binary, pkg in binaries.items() if not find_binary(binary)})
    if missing:
        raise MissingDependencyError(
            f"missing Debian packages: {' '.join(missing)}: run 'make install' or "
            f"'apt-get install {' '.join(missing)}'"
        )


def find_binary(name: str) -> str | None:
    """Locate a program on PATH or in the sbin directories (root's PATH may lack them)."""
    path = os.environ.get("PATH", "") + ":/usr/sbin:/sbin:/usr/bin:/bin"
    return shutil.which(name, path=path)
