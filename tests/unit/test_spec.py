"""Spec validation and placement: pure, no root."""

from __future__ import annotations

import ipaddress

import pytest

from vhpc.errors import SpecError
from vhpc.spec import addressing, placement
from vhpc.spec.load import ClusterOptions, HostFacts, build_spec
from vhpc.spec.model import ClusterSpec, NodeRole
from vhpc.spec.sizes import MIB, format_size, parse_size

HOST = HostFacts(online_cpus=(0, 1), mem_total=24 * 1024 * MIB,
                 taken_subnets=(ipaddress.IPv4Network("192.0.2.0/24"),))


def test_default_spec_has_controller_dns_and_round_robin_computes() -> None:
    spec = build_spec(ClusterOptions(nodes=4), HOST)
    assert [n.name for n in spec.nodes] == ["slurm", "dns", "db", "compute0", "compute1",
                                            "compute2", "compute3"]
    assert [n.cpuset for n in spec.computes] == [(0,), (1,), (0,), (1,)]
    assert all(n.memory == 1024 * MIB for n in spec.computes)  # 1G: a workflow tool's worker
    assert spec.subnet == ipaddress.IPv4Network("10.201.0.0/24")
    assert str(spec.ip_of(spec.controller)) == "10.201.0.2"
    assert str(spec.ip_of(spec.computes[0])) == "10.201.0.10"
    assert spec.controller.role is NodeRole.CONTROLLER


def test_spec_roundtrips_through_json_dict() -> None:
    spec = build_spec(ClusterOptions(name="lab", nodes=2, cpuset="1"), HOST)
    assert ClusterSpec.from_dict(spec.to_dict()) == spec


def test_kernel_names_fit_in_15_characters() -> None:
    spec = build_spec(ClusterOptions(name="a-very-long-cluster-name", nodes=1), HOST)
    assert len(spec.bridge) <= 15
    assert len(spec.veth_of(spec.computes[0])) <= 15


def test_cpu_the_host_lacks_is_refused_with_the_list_it_has() -> None:
    with pytest.raises(SpecError, match=r"CPU 3 does not exist on this host \(online CPUs: 0-1\)"):
        build_spec(ClusterOptions(cpuset="3"), HOST)


@pytest.mark.parametrize(("options", "message"), [
    (ClusterOptions(nodes=0), "at least one compute node"),
    (ClusterOptions(name="Bad"), "invalid cluster name"),
    (ClusterOptions(memory="4M"), "below the 16M"),
    (ClusterOptions(memory="1T"), "--overcommit"),
    (ClusterOptions(cpus=3), "more than the host's 2"),
    (ClusterOptions(subnet="10.9.0.0/28", nodes=6), "use --subnet 10.9.0.0/27"),
    (ClusterOptions(subnet="192.0.2.0/24"), "overlaps 192.0.2.0/24"),
    (ClusterOptions(subnet="nope"), "invalid subnet"),
    (ClusterOptions(nodes=4, max_nodes=2), "raise --max-nodes"),
])
def test_bad_options_say_what_to_do(options: ClusterOptions, message: str) -> None:
    with pytest.raises(SpecError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_spec(options, HOST)


def test_overcommit_allows_more_memory_than_the_host() -> None:
    spec = build_spec(ClusterOptions(memory="1T", overcommit=True), HOST)
    assert spec.overcommit


def test_many_nodes_get_a_larger_automatic_subnet() -> None:
    spec = build_spec(ClusterOptions(nodes=300, memory="16M"), HOST)
    assert addressing.compute_capacity(spec.subnet) >= 300


def test_subnet_choice_skips_taken_ranges() -> None:
    taken = [ipaddress.IPv4Network("10.201.0.0/24")]
    assert str(addressing.pick_subnet(taken, 24)) == "10.201.1.0/24"


@pytest.mark.parametrize(("text", "nbytes"), [("125M", 125 * MIB), ("1G", 1024 * MIB),
                                              ("512MiB", 512 * MIB), ("64", 64 * MIB),
                                              ("1.5G", 1536 * MIB)])
def test_parse_size(text: str, nbytes: int) -> None:
    assert parse_size(text) == nbytes


def test_format_size() -> None:
    assert format_size(125 * MIB) == "125M"
    assert format_size(24684084 * 1024) == "23.5G"


def test_cpulist_roundtrip() -> None:
    assert placement.parse_cpulist("0-2,5") == (0, 1, 2, 5)
    assert placement.format_cpulist([5, 0, 1, 2]) == "0-2,5"
    with pytest.raises(SpecError):
        placement.parse_cpulist("3-1")


def test_round_robin_with_several_cpus_per_node() -> None:
    assert placement.round_robin(3, 2, (0, 1, 2, 3)) == [(0, 1), (2, 3), (0, 1)]


def test_default_node_memory_is_capped_so_the_default_cluster_fits_a_small_host() -> None:
    small = HostFacts(online_cpus=(0,), mem_total=2 * 1024 * MIB)
    spec = build_spec(ClusterOptions(nodes=4), small)
    # half of what the service nodes (960M) leave, over 4 nodes
    assert {n.memory for n in spec.computes} == {136 * MIB}
    tiny = HostFacts(online_cpus=(0,), mem_total=64 * MIB)
    assert build_spec(ClusterOptions(nodes=4, overcommit=True), tiny).computes[0].memory \
        == 16 * MIB  # never below what slurmd needs
    # the seed's 125M is one flag away, and a given size is never capped
    assert build_spec(ClusterOptions(nodes=4, memory="125M"), small).node_memory == 125 * MIB
    assert build_spec(ClusterOptions(nodes=1, memory="1000M"), small).node_memory == 1000 * MIB
