"""Waits and Slurm settings that grow with the node count (spec/scale.py)."""

from __future__ import annotations

from pathlib import Path

from vhpc.services import slurm
from vhpc.spec import scale
from vhpc.spec.load import ClusterOptions, HostFacts, build_spec
from vhpc.spec.paths import ClusterPaths

FACTS = HostFacts(online_cpus=(0, 1), mem_total=64 << 30)
PATHS = ClusterPaths(Path("/var/lib/vhpc/big"))


def test_small_clusters_keep_the_fixed_waits_they_always_had() -> None:
    assert scale.boot_timeout(0) == 120
    assert scale.service_timeout("etcd", 0) == 30
    assert scale.service_timeout("slurmctld", 0) == 60
    assert scale.slurmd_timeout(245) == 30  # a /24's MaxNodeCount: slurm.conf unchanged
    assert scale.manager_boot_timeout(16) == 600


def test_waits_grow_with_the_node_count() -> None:
    for wait in (scale.boot_timeout, scale.add_timeout, scale.manager_boot_timeout,
                 scale.neighbour_entries, scale.slurmd_timeout,
                 lambda n: scale.service_timeout("etcd", n)):
        assert wait(1024) > wait(256) >= wait(16)
    # the boot that timed out at 120 s with 512 nodes, and etcd's 30 s at 1000
    assert scale.boot_timeout(512) > 240
    assert scale.service_timeout("etcd", 1000) > 100
    # `vhpc up` follows the manager at least as long as the manager waits for its nodes
    assert scale.manager_boot_timeout(1024) > scale.boot_timeout(1024) + 60


def test_slurmd_timeout_is_bounded() -> None:
    assert scale.slurmd_timeout(100_000) == scale.SLURMD_TIMEOUT_MAX


def test_neighbour_entries_cover_what_a_cluster_of_1024_holds() -> None:
    # each node: controller, DNS, gateway; controller and host: every node
    assert scale.neighbour_entries(1024) >= 5 * 1024


def test_slurm_conf_of_1024_nodes_has_a_longer_node_timeout() -> None:
    spec = build_spec(ClusterOptions(name="big", nodes=1024, memory="16M", overcommit=True),
                      FACTS)
    text = slurm.render_slurm_conf(spec, PATHS)
    assert f"MaxNodeCount={spec.max_nodes}\n" in text
    assert spec.max_nodes >= 1024 + 256
    assert f"SlurmdTimeout={scale.slurmd_timeout(spec.max_nodes)}\n" in text
    assert scale.slurmd_timeout(spec.max_nodes) > 30


def test_munge_threads_and_poll_interval_grow_but_stay_bounded() -> None:
    assert scale.munge_threads(16) == 4
    assert 4 < scale.munge_threads(1024) <= scale.MUNGE_THREADS_MAX
    assert scale.poll_interval(4) < 0.2 and scale.poll_interval(1024) <= 2.0


def test_a_small_cluster_waits_for_listening_slurmds_a_large_one_polls_slurm() -> None:
    assert scale.waits_for_listening_slurmds(1) and scale.waits_for_listening_slurmds(64)
    assert not scale.waits_for_listening_slurmds(65)
    assert not scale.waits_for_listening_slurmds(1024)
