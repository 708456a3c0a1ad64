"""Cluster users: a block of ids per cluster that no host user has, `--pids-max` checked,
and a state directory only the cluster's group can enter."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from vhpc.cluster import privacy
from vhpc.errors import SpecError
from vhpc.spec import users
from vhpc.spec.load import ClusterOptions, HostFacts, build_spec
from vhpc.spec.model import DEFAULT_PIDS_MAX
from vhpc.spec.paths import ClusterPaths
from vhpc.spec.sizes import MIB

HOST = HostFacts(online_cpus=(0, 1), mem_total=24 * 1024 * MIB)


def test_two_clusters_get_different_users_outside_the_host_ids() -> None:
    a = build_spec(ClusterOptions(name="lab-a", nodes=1), HOST)
    b = build_spec(ClusterOptions(name="lab-b", nodes=1), HOST)
    assert a.user_uid != b.user_uid
    assert a.user_uid in users.id_block(a.cluster_id)
    assert b.user_uid in users.id_block(b.cluster_id)
    assert min(a.user_uid, b.user_uid) >= users.UID_BASE


def test_the_user_skips_ids_the_host_has() -> None:
    block = users.id_block("00ff")
    assert users.cluster_uid("00ff", {block[0], block[1]}) == block[2]
    facts = HostFacts(online_cpus=(0,), mem_total=1 << 34,
                      host_ids=frozenset(users.id_block(
                          build_spec(ClusterOptions(name="lab", nodes=1), HOST).cluster_id)[:3]))
    spec = build_spec(ClusterOptions(name="lab", nodes=1), facts)
    assert spec.user_uid == users.id_block(spec.cluster_id)[3]


def test_a_block_full_of_host_ids_is_refused_with_a_hint() -> None:
    with pytest.raises(SpecError, match="belongs to a host user or group"):
        users.cluster_uid("0001", set(users.id_block("0001")))


def test_ids_are_read_from_passwd_and_group_text() -> None:
    assert users.ids_in_files("root:x:0:0::/root:/bin/sh\nbad line\n",
                              "users:x:100:\nnogroup:x:65534:\n") == {0, 100, 65534}


def test_pids_max_option_defaults_and_bounds() -> None:
    assert build_spec(ClusterOptions(name="lab", nodes=1), HOST).pids_max == DEFAULT_PIDS_MAX
    assert build_spec(ClusterOptions(name="lab", nodes=1, pids_max=200), HOST).pids_max == 200
    for bad in (0, 5, 1 << 40):
        with pytest.raises(SpecError, match="--pids-max"):
            build_spec(ClusterOptions(name="lab", nodes=1, pids_max=bad), HOST)


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to the cluster's group needs root")
def test_state_directory_opens_only_to_the_cluster_group(tmp_path: Path) -> None:
    paths = ClusterPaths(tmp_path / "lab")
    paths.root.mkdir()
    paths.ledger.write_text("")
    home = paths.home / "cluser"
    home.mkdir(parents=True)
    gid = users.id_block("0abc")[0]
    privacy.secure_state_dir(paths, gid)
    privacy.secure_home(home, gid, gid)

    def mode(p: Path) -> tuple[int, int, int]:
        st = p.stat()
        return stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid

    assert mode(paths.root) == (0o750, 0, gid)
    assert mode(paths.munge_dir) == (0o750, 0, gid)
    for private in (paths.log, paths.ns_dir, paths.root / "nodes", paths.root / "observe"):
        assert mode(private) == (0o700, 0, 0)
    assert mode(home) == (0o700, gid, gid)
    assert mode(paths.ledger)[0] == privacy.PRIVATE_FILE_MODE
