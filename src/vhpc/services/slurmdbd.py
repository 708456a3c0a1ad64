"""slurmdbd: its config (pure), its daemon, the slurm.conf lines of accounting, and the
sacctmgr script that registers the cluster, its QOS, accounts and users at boot.

slurmdbd runs as root in the `db` node (SlurmUser=root, as slurmctld), so its config,
which names the database user, is root's and 0600 (slurmdbd refuses a readable one).
"""

from __future__ import annotations

from pathlib import Path

from vhpc.services import jwt_auth, mariadb, slurm_versions
from vhpc.services.base import RPC_PATH_NICE, DaemonSpec
from vhpc.spec.model import ClusterSpec, NodeRole, NodeSpec, UserSpec
from vhpc.spec.paths import ClusterPaths

SLURMDBD_PORT = 6819
DEFAULT_ACCOUNT = "default"  # the account of the cluster's default user (cluser)
#: QOS made at boot: name -> sacctmgr attributes. `normal` is Slurm's own, the default;
#: DenyOnLimit refuses at submission a job over the QOS's limits (not pending forever).
QOS = {
    "normal": "Priority=10",
    "debug": "Priority=1000 MaxWall=00:30:00 Flags=DenyOnLimit",
    "long": "Priority=0 MaxWall=7-00:00:00 Flags=DenyOnLimit",
}
CONF_MODE = 0o600


def db_node(spec: ClusterSpec) -> NodeSpec | None:
    """The node running MariaDB and slurmdbd, or None when accounting is off."""
    if not spec.accounting:
        return None
    return next((n for n in spec.nodes if n.role is NodeRole.DB), None)


def conf_file(paths: ClusterPaths) -> Path:
    """slurmdbd.conf beside slurm.conf (slurmdbd looks there, from SLURM_CONF)."""
    return paths.slurm_etc / "slurmdbd.conf"


def render_slurmdbd_conf(spec: ClusterSpec, paths: ClusterPaths, node: NodeSpec) -> str:
    """slurmdbd.conf: munge from the cluster's socket, MariaDB on the node's loopback."""
    lines = [
        "# slurmdbd.conf written by vhpc; slurmdbd runs as root in the db node",
        "AuthType=auth/munge",
        f"AuthInfo=socket={paths.munge_socket}",
        f"DbdHost={node.name}",
        f"DbdAddr={spec.ip_of(node)}",
        f"DbdPort={SLURMDBD_PORT}",
        "SlurmUser=root",
        f"PidFile={paths.run}/slurmdbd.pid",
        "DebugLevel=info",
        "StorageType=accounting_storage/mysql",
        "StorageHost=127.0.0.1",
        f"StoragePort={mariadb.PORT}",
        "StorageUser=root",
        f"StorageLoc={mariadb.DATABASE}",
        *jwt_auth.conf_lines(paths),  # slurmrestd's tokens (the slurmdbd endpoints)
    ]
    return "\n".join(slurm_versions.adapt("slurmdbd.conf", lines, spec.slurm_version)) + "\n"


def slurm_conf_lines(spec: ClusterSpec, paths: ClusterPaths) -> list[str]:
    """slurm.conf lines of accounting and priorities ([] when accounting is off).

    AccountingStoragePass names the cluster's munge socket: Slurm's connections to
    slurmdbd (slurmctld's, sacct's, sacctmgr's) do not use AuthInfo.
    """
    node = db_node(spec)
    if node is None:
        return []
    return [
        "AccountingStorageType=accounting_storage/slurmdbd",
        f"AccountingStorageHost={spec.ip_of(node)}",
        f"AccountingStoragePort={SLURMDBD_PORT}",
        f"AccountingStoragePass={paths.munge_socket}",
        "AccountingStorageEnforce=associations,limits,qos",
        "JobAcctGatherFrequency=task=5",
        "PriorityType=priority/multifactor",
        "PriorityCalcPeriod=1",
        "PriorityDecayHalfLife=1-0",
        "PriorityWeightFairshare=10000",
        "PriorityWeightQOS=10000",
        "PriorityWeightAge=1000",
        "PriorityWeightJobSize=100",
    ]


def job_acct_gather(spec: ClusterSpec) -> str:
    """JobAcctGatherType: /proc sampling with accounting (MaxRSS in sacct), none without."""
    return "jobacct_gather/linux" if db_node(spec) is not None else "jobacct_gather/none"


def daemon(paths: ClusterPaths, node: str) -> DaemonSpec:
    """slurmdbd in the foreground; with no LogFile it logs to its console log."""
    return DaemonSpec("slurmdbd", node, ("slurmdbd", "-D"), paths.daemon_log("slurmdbd", node),
                      {"SLURM_CONF": str(paths.slurm_conf)}, session_nice=RPC_PATH_NICE)


def accounts_of(spec: ClusterSpec) -> list[str]:
    """Every Slurm account of the cluster: `default` first, then the users', sorted."""
    return [DEFAULT_ACCOUNT, *sorted({u.account for u in spec.users} - {DEFAULT_ACCOUNT})]


def add_users_script(spec: ClusterSpec, users: list[UserSpec]) -> str:
    """sacctmgr commands (one a line, for `sacctmgr -i` on stdin) adding these users."""
    qos = ",".join(QOS)
    lines: list[str] = []
    for account in sorted({u.account for u in users}):
        lines.append(f"add account {account} Cluster={spec.name} Description={account} "
                     f"Organization=vhpc QOS={qos} DefaultQOS=normal")
    for user in users:
        lines.append(f"add user {user.name} Account={user.account} "
                     f"DefaultAccount={user.account} Cluster={spec.name}")
    return "\n".join(lines) + "\n"


def bootstrap_script(spec: ClusterSpec) -> str:
    """sacctmgr commands that register the cluster, QOS, accounts and users at boot."""
    lines = [f"add cluster {spec.name}"]
    lines += [f"add qos {name}" for name in QOS if name != "normal"]
    lines += [f"modify qos {name} set {attrs}" for name, attrs in QOS.items()]
    default = UserSpec(spec.user, DEFAULT_ACCOUNT, spec.user_uid)
    return "\n".join(lines) + "\n" + add_users_script(spec, [default, *spec.users])
