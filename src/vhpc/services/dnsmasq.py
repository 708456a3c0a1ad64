"""dnsmasq on the `dns` node: serves the cluster's names from a hosts directory.

`--hostsdir` is re-read on change (inotify), so adding a file makes a name resolvable
within half a second; names come from the registry (see cluster/registry.py). Only the
manager writes the directory (root, 0755, on the host: no node mounts it writable).
"""

from __future__ import annotations

from pathlib import Path

from vhpc.atomic import write_atomic
from vhpc.services.base import RPC_PATH_NICE, DaemonSpec
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
                      paths.daemon_log("dnsmasq", node.name), session_nice=RPC_PATH_NICE)


def apply_hosts_dir(hostsdir: Path, wanted: dict[str, str]) -> tuple[list[str], list[str]]:
    """Make the directory hold exactly `wanted`; return (written, removed) names.

    Files are replaced atomically (write + rename) so dnsmasq never reads half a file.
    """
    hostsdir.mkdir(parents=True, exist_ok=True)
    hostsdir.chmod(0o755)
    written, removed = [], []
    current = {p.name: p for p in hostsdir.iterdir() if not p.name.startswith(".")}
    for name, text in wanted.items():
        path = hostsdir / name
        if name in current and _read(path) == text:
            continue
        write_atomic(path, text, 0o644)
        written.append(name)
    for name, path in current.items():
        if name not in wanted:
            path.unlink(missing_ok=True)
            removed.append(name)
    return written, removed


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None
