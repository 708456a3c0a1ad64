"""The cluster user's uid and gid: one block of ids per cluster, never a host user's.

With one uid for every cluster's `cluser`, a job of cluster A could signal cluster B's
jobs and read B's home. Each cluster now owns a block of `IDS_PER_CLUSTER` ids at
`UID_BASE + cluster_id * IDS_PER_CLUSTER` (the four hex digits allocated unique on the
host, spec/ids.py), so no two clusters share an id; its user takes the first id of the
block that no host user or group has (uid and gid are the same number). The id is kept
in the spec, so it never changes while the cluster lives.
"""

from __future__ import annotations

from collections.abc import Collection

from vhpc.errors import SpecError

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
