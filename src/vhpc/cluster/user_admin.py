"""Cluster users at run time (`vhpc user add`, `user ls`): the spec, the cluster's passwd
and group (rewritten over their inodes: every node has them bind-mounted), the home in
the shared /home, and the user's association in slurmdbd.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from vhpc.atomic import write_in_place
from vhpc.cluster import accounting
from vhpc.errors import UserError
from vhpc.services import files, slurmdbd
from vhpc.spec import users as users_mod
from vhpc.spec.model import ClusterSpec, UserSpec

if TYPE_CHECKING:
    from vhpc.cluster.cluster import Cluster


def all_users(spec: ClusterSpec) -> list[UserSpec]:
    """The default user (account `default`) and the others, in the order they were made."""
    return [UserSpec(spec.user, slurmdbd.DEFAULT_ACCOUNT, spec.user_uid), *spec.users]


def add_user(cluster: Cluster, name: str, account: str, new_account: bool = False) -> UserSpec:
    """Add a cluster user in `account` (which must exist unless `new_account`)."""
    what = "user add"
    users_mod.check_user_name(name, what)
    users_mod.check_account(account, what)
    with cluster.lock:
        spec = cluster.spec
        if any(u.name == name for u in all_users(spec)):
            raise UserError(f"user {name!r} already exists in cluster {spec.name!r}",
                            fix="pick another name ('vhpc user ls' lists them)")
        accounts = (accounting.known_accounts(cluster.slurm)
                    if slurmdbd.db_node(spec) is not None
                    else {u.account for u in all_users(spec)})
        if account not in accounts and not new_account:
            raise UserError(f"account {account!r} does not exist in cluster {spec.name!r}: "
                            f"use one of {', '.join(sorted(accounts))}",
                            fix="or make it with --new-account")
        host_ids = users_mod.ids_in_files(Path("/etc/passwd").read_text(),
                                          Path("/etc/group").read_text())
        taken = {u.uid for u in all_users(spec)}
        (user,) = users_mod.assign_users([(name, account)], spec.cluster_id, host_ids, taken)
        new = replace(spec, users=(*spec.users, user))
        # passwd first: slurmctld resolves the user's uid when slurmdbd sends it the new
        # association, and an association whose user it cannot resolve never matches
        write_user_files(cluster, new)
        try:
            accounting.add_users(spec, cluster.slurm, [user])
        except BaseException:
            write_user_files(cluster, spec)  # as it was: nothing half-made
            shutil.rmtree(cluster.paths.home / user.name, ignore_errors=True)
            raise
        cluster.set_spec(new)
    cluster.events.emit("user_added", f"user {name} added (account {account}, uid {user.uid})")
    return user


def write_user_files(cluster: Cluster, spec: ClusterSpec) -> None:
    """passwd and group over their inodes (nodes keep them mounted), and the new homes."""
    p = cluster.paths
    home = p.home / spec.user
    write_in_place(p.etc / "passwd", files.render_passwd(
        Path("/etc/passwd").read_text(), spec.user, spec.user_uid, str(home), spec.users))
    write_in_place(p.etc / "group", files.render_group(
        Path("/etc/group").read_text(), spec.user, spec.user_uid, spec.users))
    for user in spec.users:
        if not (p.home / user.name).exists():
            accounting.make_home(p.home / user.name, user.uid)
