"""Cluster ids: the four hex digits in every link name of a cluster (vhXXXX-name, vhXXXXnN).

Four digits keep link names within the kernel's 15 characters, so two names can hash to
the same digits (rz23 and rz352 do). The id is therefore allocated, not just derived: the
name's hash if no cluster on the host uses it and no host link starts with it, else the
next free hash of the name. The caller holds the host lock while it allocates and
creates the bridge, and the id is kept in the spec (spec.json), so it never changes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection

from vhpc.errors import SpecError

LINK_PREFIX = "vh"
ID_LENGTH = 4
MAX_TRIES = 4096


def derived_id(name: str, attempt: int = 0) -> str:
    """The `attempt`-th candidate id of a cluster name (attempt 0: the classic hash)."""
    text = name if attempt == 0 else f"{name}#{attempt}"
    return hashlib.sha1(text.encode()).hexdigest()[:ID_LENGTH]


def id_of_link(link: str) -> str | None:
    """The cluster id inside a vhpc link name, or None if the name is not one of ours."""
    candidate = link[len(LINK_PREFIX):len(LINK_PREFIX) + ID_LENGTH]
    if not link.startswith(LINK_PREFIX) or len(candidate) != ID_LENGTH:
        return None
    if any(c not in "0123456789abcdef" for c in candidate):
        return None
    return candidate


def allocate_cluster_id(name: str, taken_ids: Collection[str], links: Collection[str]) -> str:
    """A cluster id no other cluster on this host uses and no host link name starts with."""
    used = set(taken_ids) | {i for link in links if (i := id_of_link(link)) is not None}
    for attempt in range(MAX_TRIES):
        candidate = derived_id(name, attempt)
        if candidate not in used:
            return candidate
    raise SpecError(f"no free cluster id for {name!r} after {MAX_TRIES} tries "
                    f"({len(used)} in use): remove stale clusters ('vhpc ls', 'vhpc clean')")
