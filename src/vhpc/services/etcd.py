"""etcd on the `dns` node: the cluster's registry (node records held by a lease).

One member, listening on the dns node's address only (its peer port on the dns node's
loopback: no other node can talk raft to it); its data lives in the cluster's state
directory. The manager on the host reaches it across the bridge through etcd's v3 JSON
gateway (see cluster/registry.py).

Client auth is on: only the manager writes. It authenticates as etcd's `root` user with a
random password kept in `<state>/etc/etcd-root.password` (0600); the registry enables
auth on its first request (cluster/registry.py `HttpEtcd`). Everyone else reads as the
`reader` user, whose role may only read `/vhpc/`: every node's environment has
`ETCDCTL_USER=reader:reader`, so `etcdctl get --prefix /vhpc/` works in any node and
`etcdctl put` is refused ("permission denied").
"""

from __future__ import annotations

import secrets
from pathlib import Path

from vhpc.atomic import write_atomic
from vhpc.services.base import DaemonSpec
from vhpc.spec.model import ClusterSpec, NodeRole, NodeSpec
from vhpc.spec.paths import ClusterPaths

CLIENT_PORT = 2379
PEER_PORT = 2380
ROOT_USER = "root"
READER_USER = "reader"
READER_PASSWORD = "reader"  # public on purpose: the reader role can only read /vhpc/
READ_PREFIX = "/vhpc/"


def data_dir(paths: ClusterPaths) -> Path:
    """Where etcd keeps its write-ahead log and snapshots."""
    return paths.root / "etcd"


def dns_node(spec: ClusterSpec) -> NodeSpec | None:
    """The node etcd runs on (the `dns` service node), if the cluster has one."""
    return next((n for n in spec.nodes if n.role is NodeRole.DNS), None)


def client_url(spec: ClusterSpec) -> str | None:
    """http://<dns-ip>:2379, or None when the cluster has no dns node."""
    node = dns_node(spec)
    return None if node is None else f"http://{spec.ip_of(node)}:{CLIENT_PORT}"


def key_prefix(spec: ClusterSpec) -> str:
    """Every record of this cluster lives below this key."""
    return f"/vhpc/{spec.name}/nodes/"


def argv(spec: ClusterSpec, paths: ClusterPaths, node: NodeSpec) -> tuple[str, ...]:
    """A one-member etcd bound to the node's address (client and peer)."""
    ip = spec.ip_of(node)
    client = f"http://{ip}:{CLIENT_PORT}"
    peer = f"http://127.0.0.1:{PEER_PORT}"  # one member: no peer ever needs to reach it
    return (
        "etcd", f"--name={node.name}", f"--data-dir={data_dir(paths)}",
        f"--listen-client-urls={client}", f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}", f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster={node.name}={peer}", f"--initial-cluster-token=vhpc-{spec.name}",
        "--initial-cluster-state=new", "--logger=zap", "--log-outputs=stderr",
        "--quota-backend-bytes=268435456", "--snapshot-count=10000",
        # one member on one host: elect itself in ~0.1 s instead of ~1 s
        "--heartbeat-interval=20", "--election-timeout=200",
        # passwords are 256-bit random (root) or public (reader): hashing cost buys
        # nothing, and cost 4 keeps each authentication under a millisecond
        "--bcrypt-cost=4",
    )


def daemon(spec: ClusterSpec, paths: ClusterPaths, node: NodeSpec) -> DaemonSpec:
    """The etcd daemon of the cluster."""
    return DaemonSpec("etcd", node.name, argv(spec, paths, node),
                      paths.daemon_log("etcd", node.name))


def node_env(spec: ClusterSpec) -> dict[str, str]:
    """Environment that points `etcdctl` inside any node at the cluster's etcd."""
    url = client_url(spec)
    return {} if url is None else {"ETCDCTL_ENDPOINTS": url, "ETCDCTL_API": "3",
                                   "ETCDCTL_USER": f"{READER_USER}:{READER_PASSWORD}"}


def root_password_file(paths: ClusterPaths) -> Path:
    """The password of etcd's root user (0600, root only)."""
    return paths.etc / "etcd-root.password"


def ensure_root_password(paths: ClusterPaths) -> str:
    """The root password, made (random, 0600) the first time."""
    path = root_password_file(paths)
    if not path.exists():
        write_atomic(path, secrets.token_urlsafe(32) + "\n", 0o600)
    return root_password(paths)


def root_password(paths: ClusterPaths) -> str:
    """The root password of a cluster's etcd."""
    return root_password_file(paths).read_text().strip()


def reader_permission() -> tuple[str, str]:
    """The key range the reader role may read: every cluster's records below /vhpc/."""
    end = READ_PREFIX[:-1] + chr(ord(READ_PREFIX[-1]) + 1)
    return READ_PREFIX, end


def healthy(spec: ClusterSpec, timeout: float = 1.0) -> bool:
    """True once etcd answers `GET /health` with {"health": "true"}."""
    import httpx

    url = client_url(spec)
    if url is None:
        return True
    try:
        return bool(httpx.get(f"{url}/health", timeout=timeout).json().get("health") == "true")
    except (httpx.HTTPError, ValueError):
        return False
