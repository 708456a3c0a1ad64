"""Cluster files bind-mounted into every node: hosts, resolv.conf, passwd, group.

The host's own files are never edited: these are the host's entries plus the cluster's.
"""

from __future__ import annotations

from vhpc.spec.model import ClusterSpec, NodeRole


def render_hosts(spec: ClusterSpec, nodes: list[tuple[str, str]] | None = None) -> str:
    """/etc/hosts naming every node, short and '<node>.<cluster>' forms."""
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback",
             f"{spec.host_ip}\thost.{spec.name} host vhpc-host"]
    pairs = nodes if nodes is not None else [(n.name, str(spec.ip_of(n))) for n in spec.nodes]
    lines += [f"{ip}\t{name}.{spec.name} {name}" for name, ip in pairs]
    return "\n".join(lines) + "\n"


def render_resolv_conf(spec: ClusterSpec) -> str:
    """resolv.conf pointing only at the cluster's DNS node (no unreachable upstreams)."""
    if spec.dns and any(n.role is NodeRole.DNS for n in spec.nodes):
        dns = next(n for n in spec.nodes if n.role is NodeRole.DNS)
        return (f"search {spec.name}\nnameserver {spec.ip_of(dns)}\n"
                "options timeout:1 attempts:1\n")
    return f"search {spec.name}\noptions timeout:1 attempts:1\n"


def render_passwd(host_passwd: str, user: str, uid: int, home: str) -> str:
    """The host's passwd plus the cluster user (replacing a same-named host entry)."""
    kept = [ln for ln in host_passwd.splitlines()
            if ln and ln.split(":", 1)[0] != user and _field(ln, 2) != str(uid)]
    kept.append(f"{user}:x:{uid}:{uid}:vhpc cluster user:{home}:/bin/bash")
    return "\n".join(kept) + "\n"


def render_group(host_group: str, user: str, gid: int) -> str:
    """The host's group file plus the cluster user's own group."""
    kept = [ln for ln in host_group.splitlines()
            if ln and ln.split(":", 1)[0] != user and _field(ln, 2) != str(gid)]
    kept.append(f"{user}:x:{gid}:")
    return "\n".join(kept) + "\n"


def _field(line: str, index: int) -> str:
    parts = line.split(":")
    return parts[index] if len(parts) > index else ""


def render_profile() -> str:
    """The cluster user's ~/.bashrc: PATH with vhpc's tools and a prompt naming the node."""
    return (
        "# written by vhpc\n"
        'export PATH="/opt/vhpc/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"\n'
        "PS1='[\\u@\\h \\W]\\$ '\n"
    )
