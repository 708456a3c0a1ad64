"""dnsmasq on the `dns` node: serves the cluster's names from a hosts directory.

`--hostsdir` is re-read on change (inotify), so adding a file makes a name resolvable
within half a second; names come from the registry (see cluster/registry.py).
"""

from __future__ import annotations

from pathlib import Path

from vhpc.services.base import DaemonSpec
from vhpc.spec.model import ClusterSpec, NodeSpec
from vhpc.spec.paths import ClusterPaths


def hostsdir(paths: ClusterPaths) -> Path:
    """Directory of per-node hosts files dnsmasq serves."""
    return paths.root / "dns" / "hosts.d"


def render_node_hosts(spec: ClusterSpec, name: str, ip: str) -> str:
    """One node's hosts file: short name and NAME.CLUSTER (reverse comes for free)."""
    return f"{ip} {name}.{spec.name} {name}\n"


def argv(spec: ClusterSpec, paths: ClusterPaths, node: NodeSpec) -> tuple[str, ...]:
    """dnsmasq in the foreground, authoritative for the cluster domain, no upstreams."""
    return (
        "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--pid-file=",
        "--no-resolv", "--no-hosts", "--no-poll",
        f"--hostsdir={hostsdir(paths)}",
        f"--local=/{spec.name}/", f"--domain={spec.name}", "--expand-hosts",
        f"--listen-address={spec.ip_of(node)}", "--bind-interfaces",
        "--log-facility=-", "--cache-size=0", "--user=root", "--group=root",
    )


def daemon(spec: ClusterSpec, paths: ClusterPaths, node: NodeSpec) -> DaemonSpec:
    """The dnsmasq daemon of the cluster."""
    return DaemonSpec("dnsmasq", node.name, argv(spec, paths, node),
                      paths.daemon_log("dnsmasq", node.name))
