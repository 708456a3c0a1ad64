"""Cluster files bind-mounted into every node: hosts, resolv.conf, passwd, group.

The host's own files are never edited: these are the host's entries plus the cluster's.
"""

from __future__ import annotations

from collections.abc import Sequence

from vhpc.spec.model import ClusterSpec, NodeRole, UserSpec


def render_hosts(spec: ClusterSpec, nodes: list[tuple[str, str]] | None = None) -> str:
    """/etc/hosts naming every node, short and '<node>.<cluster>' forms."""
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback",
             f"{spec.host_ip}\thost.{spec.name} host vhpc-host"]
    pairs = nodes if nodes is not None else [(n.name, str(spec.ip_of(n))) for n in spec.nodes]
    lines += [f"{ip}\t{name}.{spec.name} {name}" for name, ip in pairs]
    return "\n".join(lines) + "\n"


#: the resolver's patience: dnsmasq answers in well under a millisecond, but on a host
#: saturated by a step across 1024 nodes one try of 1 s failed ("Temporary failure in
#: name resolution": the step's launch failed on ~30 nodes); up to 4 tries of 2 s now
RESOLVER_OPTIONS = "options timeout:2 attempts:4"


def render_resolv_conf(spec: ClusterSpec) -> str:
    """resolv.conf pointing only at the cluster's DNS node (no unreachable upstreams)."""
    if spec.dns and any(n.role is NodeRole.DNS for n in spec.nodes):
        dns = next(n for n in spec.nodes if n.role is NodeRole.DNS)
        return f"search {spec.name}\nnameserver {spec.ip_of(dns)}\n{RESOLVER_OPTIONS}\n"
    return f"search {spec.name}\n{RESOLVER_OPTIONS}\n"


def render_passwd(host_passwd: str, user: str, uid: int, home: str,
                  others: Sequence[UserSpec] = ()) -> str:
    """The host's passwd plus the cluster's users (replacing same-named host entries).

    `home` is the default user's; the others' homes are beside it.
    """
    names = {user, *(u.name for u in others)}
    ids = {str(uid), *(str(u.uid) for u in others)}
    kept = [ln for ln in host_passwd.splitlines()
            if ln and ln.split(":", 1)[0] not in names and _field(ln, 2) not in ids]
    kept.append(f"{user}:x:{uid}:{uid}:vhpc cluster user:{home}:/bin/bash")
    base = home.rsplit("/", 1)[0]
    kept += [f"{u.name}:x:{u.uid}:{u.uid}:vhpc user ({u.account}):{base}/{u.name}:/bin/bash"
             for u in others]
    return "\n".join(kept) + "\n"


def render_group(host_group: str, user: str, gid: int,
                 others: Sequence[UserSpec] = ()) -> str:
    """The host's group file plus the cluster's groups: the default user's, which every
    other cluster user is a member of (it opens the state directory), and one per user."""
    names = {user, *(u.name for u in others)}
    ids = {str(gid), *(str(u.uid) for u in others)}
    kept = [ln for ln in host_group.splitlines()
            if ln and ln.split(":", 1)[0] not in names and _field(ln, 2) not in ids]
    kept.append(f"{user}:x:{gid}:{','.join(u.name for u in others)}")
    kept += [f"{u.name}:x:{u.uid}:" for u in others]
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
