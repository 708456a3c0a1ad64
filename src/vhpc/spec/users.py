"""The cluster user's uid and gid: one block of ids per cluster, never a host user's.

With one uid for every cluster's `cluser`, a job of cluster A could signal cluster B's
jobs and read B's home. Each cluster now owns a block of `IDS_PER_CLUSTER` ids at
`UID_BASE + cluster_id * IDS_PER_CLUSTER` (the four hex digits allocated unique on the
host, spec/ids.py), so no two clusters share an id; its user takes the first id of the
block that no host user or group has (uid and gid are the same number). The id is kept
in the spec, so it never changes while the cluster lives.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable

from vhpc.errors import SpecError
from vhpc.spec.model import UserSpec

#: 0x70000000: above the ranges systemd-nspawn and /etc/subuid defaults hand to containers
#: (524288-1879048191) and below 2**31, which some tools still treat as signed.
UID_BASE = 0x70000000
IDS_PER_CLUSTER = 16


def id_block(cluster_id: str) -> range:
    """The ids a cluster owns, from its four-hex-digit cluster id."""
    start = UID_BASE + int(cluster_id, 16) * IDS_PER_CLUSTER
    return range(start, start + IDS_PER_CLUSTER)


def cluster_uid(cluster_id: str, host_ids: Collection[int]) -> int:
    """The cluster user's uid (= gid): the first id of the block no host user or group has."""
    for uid in id_block(cluster_id):
        if uid not in host_ids:
            return uid
    block = id_block(cluster_id)
    raise SpecError(f"every id from {block.start} to {block.stop - 1} (cluster id "
                    f"{cluster_id}) belongs to a host user or group: free one, or pick "
                    "another cluster name")


def ids_in_files(*texts: str) -> frozenset[int]:
    """Numeric ids (third field) of passwd(5) or group(5) file contents."""
    found: set[int] = set()
    for text in texts:
        for line in text.splitlines():
            fields = line.split(":")
            if len(fields) > 2 and fields[2].isdigit():
                found.add(int(fields[2]))
    return frozenset(found)


#: login names: what useradd accepts by default, lowercase (Slurm compares them as given)
_USER_NAME_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_ACCOUNT_RE = re.compile(r"^[a-z0-9_][a-z0-9_-]{0,31}$")
#: names a cluster user may not take: root, the daemons' users and the default user
RESERVED_USER_NAMES = frozenset({"root", "daemon", "bin", "sys", "nobody", "munge",
                                 "slurm", "mysql", "cluser"})
DEFAULT_ACCOUNT = "default"
_USERS_HINT = "give name:account pairs separated by commas, e.g. --users alice:physics,bob:chem"


def parse_users(entries: Iterable[str], what: str = "--users") -> tuple[tuple[str, str], ...]:
    """'name:account' entries (a comma also separates) -> (name, account) pairs, checked.

    A bare name gets the account `default`, the default user's.
    """
    pairs: list[tuple[str, str]] = []
    for entry in entries:
        for item in str(entry).split(","):
            item = item.strip()
            if not item:
                continue
            name, colon, account = item.partition(":")
            if (colon and not account) or ":" in account:
                raise SpecError(f"{what} {item!r}: {_USERS_HINT}")
            pairs.append((check_user_name(name, what), check_account(account or DEFAULT_ACCOUNT,
                                                                     what)))
    seen: set[str] = set()
    for name, _ in pairs:
        if name in seen:
            raise SpecError(f"{what}: user {name!r} is given twice: name each user once")
        seen.add(name)
    return tuple(pairs)


def check_user_name(name: str, what: str = "user") -> str:
    """A login name: lowercase letters, digits, '_' or '-', not a reserved one."""
    if not _USER_NAME_RE.fullmatch(name):
        raise SpecError(f"{what}: invalid user name {name!r}: use 1-32 lowercase letters, "
                        "digits, '_' or '-', starting with a letter (e.g. alice)")
    if name in RESERVED_USER_NAMES:
        raise SpecError(f"{what}: user name {name!r} is reserved: pick another name")
    return name


def check_account(account: str, what: str = "account") -> str:
    """A Slurm account name: lowercase letters, digits, '_' or '-'."""
    if not _ACCOUNT_RE.fullmatch(account):
        raise SpecError(f"{what}: invalid account name {account!r}: use 1-32 lowercase "
                        "letters, digits, '_' or '-' (e.g. physics)")
    return account


def assign_users(pairs: Iterable[tuple[str, str]], cluster_id: str,
                 host_ids: Collection[int], taken: Collection[int]) -> tuple[UserSpec, ...]:
    """UserSpecs for (name, account) pairs, each with the next free id of the cluster's block.

    `taken`: ids the cluster already gave (its default user, earlier users).
    """
    used = set(host_ids) | set(taken)
    block = id_block(cluster_id)
    out: list[UserSpec] = []
    for name, account in pairs:
        uid = next((i for i in block if i not in used), None)
        if uid is None:
            raise SpecError(f"cluster id {cluster_id} has no free uid left for user {name!r} "
                            f"(a cluster holds at most {IDS_PER_CLUSTER - 1} extra users): "
                            "add fewer users")
        used.add(uid)
        out.append(UserSpec(name, account, uid))
    return tuple(out)
