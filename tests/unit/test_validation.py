"""Options validated before anything is made, and cluster ids that cannot collide (issue 13).

Pure functions of the spec layer, with the host's facts passed in.
"""

from __future__ import annotations

import ipaddress

import pytest

from tests.unit.fake_runtime import FakeRuntime
from vhpc.cluster.ledger import Kind, Ledger
from vhpc.cluster.teardown import foreign_veths, remove_owned
from vhpc.errors import SpecError
from vhpc.spec import endpoints, ids
from vhpc.spec.load import ClusterOptions, HostFacts, build_spec

LAN = ipaddress.ip_address("192.168.7.20")
FACTS = HostFacts(online_cpus=(0, 1), mem_total=64 << 30,
                  taken_subnets=(ipaddress.IPv4Network("192.168.7.0/24"),),
                  host_addresses=(ipaddress.ip_address("127.0.0.1"), LAN,
                                  ipaddress.ip_address("10.99.0.1")))


def up(**kwargs: object) -> None:
    extra = tuple((k, str(v)) for k, v in kwargs.pop("extra", {}).items())  # type: ignore[attr-defined]
    build_spec(ClusterOptions(name="heval", extra=extra, **kwargs), FACTS)  # type: ignore[arg-type]


# -- endpoints ------------------------------------------------------------------------
@pytest.mark.parametrize(("extra", "message"), [
    ({"listen": "8.8.8.8:80"}, "8.8.8.8 is not an address of this host"),
    ({"listen": "nohost:80"}, "must be an IP address"),
    ({"listen": "0.0.0.0:70000"}, "port must be a number from 0 to 65535"),
    ({"syslog": "1.2.3.4:notaport"}, "--syslog '1.2.3.4:notaport': the port must be"),
    ({"graphite": "host:99999"}, "--graphite 'host:99999': the port must be a number from 1"),
    ({"graphite": "bad host:2003"}, "neither an IP address nor a host name"),
    ({"graphite": "[::1:2003"}, "use [ADDR]:PORT"),
    ({"sample_interval": "0"}, "--sample-interval"),
])
def test_bad_endpoints_are_refused_before_boot(extra: dict[str, str], message: str) -> None:
    with pytest.raises(SpecError, match=message.replace("[", r"\[").replace("(", r"\(")):
        up(extra=extra)


@pytest.mark.parametrize("listen", ["127.0.0.1:0", ":8080", "0.0.0.0:8080", "192.168.7.20:80",
                                    "[::]:8080", "[::1]:81", "127.0.0.5"])
def test_good_listen_addresses_pass(listen: str) -> None:
    up(extra={"listen": listen})


def test_endpoint_parsers() -> None:
    assert endpoints.parse_listen(":8080") == ("127.0.0.1", 8080)
    assert endpoints.parse_listen("[::1]:81") == ("::1", 81)
    assert endpoints.parse_remote("carbon.lab", "--graphite", 2003) == ("carbon.lab", 2003)
    assert endpoints.parse_remote("[::1]:514", "--syslog", 514) == ("::1", 514)
    assert endpoints.parse_remote("10.0.0.5:2004", "--graphite", 2003) == ("10.0.0.5", 2004)
    assert endpoints.check_listen("192.168.7.20:9", FACTS.host_addresses) == ("192.168.7.20", 9)


# -- subnets --------------------------------------------------------------------------
@pytest.mark.parametrize("subnet", ["127.0.0.0/24", "0.0.0.0/24", "224.0.0.0/24",
                                    "8.8.8.0/24", "169.254.0.0/24", "255.255.255.0/24"])
def test_only_private_subnets(subnet: str) -> None:
    with pytest.raises(SpecError, match="is not a private range"):
        up(subnet=subnet)


def test_subnet_holding_a_host_address_is_refused() -> None:
    with pytest.raises(SpecError, match=r"holds 10\.99\.0\.1, an address of this host"):
        up(subnet="10.99.0.0/24")


@pytest.mark.parametrize("subnet", ["10.77.0.0/24", "172.20.3.0/24", "192.168.200.0/24",
                                    "100.64.5.0/24"])
def test_private_subnets_pass(subnet: str) -> None:
    up(subnet=subnet)


# -- Slurm names ----------------------------------------------------------------------
@pytest.mark.parametrize("partition", ["a b", "", "x=y", "a,b", "default", "DEFAULT", "-x",
                                       "p\n"])
def test_partition_must_be_a_slurm_name(partition: str) -> None:
    with pytest.raises(SpecError, match="invalid --partition"):
        up(partition=partition)


def test_features_are_checked_at_up_too() -> None:
    with pytest.raises(SpecError, match="invalid feature 'a b'"):
        up(features=("a b",))


# -- cluster ids ----------------------------------------------------------------------
def test_rz23_and_rz352_hash_alike_but_get_different_ids() -> None:
    first = build_spec(ClusterOptions(name="rz23", nodes=2), FACTS)
    second_facts = HostFacts(FACTS.online_cpus, FACTS.mem_total,
                             cluster_ids=frozenset({first.cluster_id}))
    second = build_spec(ClusterOptions(name="rz352", nodes=2), second_facts)
    assert ids.derived_id("rz23") == ids.derived_id("rz352") == first.cluster_id
    assert second.cluster_id != first.cluster_id
    mine = {first.veth_of(n) for n in first.computes} | {first.bridge}
    theirs = {second.veth_of(n) for n in second.computes} | {second.bridge}
    assert not any(a.startswith(f"vh{second.cluster_id}") for a in mine)
    assert not mine & theirs


def test_an_existing_link_reserves_its_id() -> None:
    taken = ids.derived_id("he97")
    allocated = ids.allocate_cluster_id("he97", (), {f"vh{taken}n10", "eth0", "lo"})
    assert allocated != taken and len(allocated) == 4
    assert ids.allocate_cluster_id("he97", (), {"eth0"}) == taken  # unchanged when free


def test_the_id_is_kept_in_the_spec() -> None:
    from vhpc.spec.model import ClusterSpec

    spec = build_spec(ClusterOptions(name="rz352", nodes=1),
                      HostFacts((0,), 1 << 34, cluster_ids=frozenset({ids.derived_id("rz352")})))
    again = ClusterSpec.from_dict(spec.to_dict())
    assert again.cluster_id == spec.cluster_id != ids.derived_id("rz352")


def test_id_of_link() -> None:
    assert ids.id_of_link("vh0d8fn10") == "0d8f"
    assert ids.id_of_link("vh0d8f-rz23") == "0d8f"
    assert ids.id_of_link("veth0") is None and ids.id_of_link("vhxyzwn1") is None


# -- rollback ownership ---------------------------------------------------------------
def test_rollback_leaves_a_veth_on_another_clusters_bridge(tmp_path: object) -> None:
    from pathlib import Path

    ledger = Ledger(Path(str(tmp_path)) / "ledger.jsonl")
    ledger.add(Kind.BRIDGE, "vh0d8f-rz352")
    ledger.add(Kind.VETH, "vh0d8fn10", "compute0")  # the add failed: rz23 has that name
    ledger.add(Kind.VETH, "vh0d8fn11", "compute1")  # ours, on our bridge
    masters = {"vh0d8fn10": "vh0d8f-rz23", "vh0d8fn11": "vh0d8f-rz352"}
    runtime = FakeRuntime()
    veths = ledger.entries(Kind.VETH)
    assert [e.ident for e in foreign_veths(ledger, veths, masters.get)] == ["vh0d8fn10"]
    deleted: list[str] = []
    runtime.delete_links = deleted.extend  # type: ignore[method-assign, assignment]
    assert remove_owned(ledger, runtime, master_of=masters.get) == []
    assert "vh0d8fn10" not in deleted and {"vh0d8fn11", "vh0d8f-rz352"} <= set(deleted)
    assert ledger.is_empty()


@pytest.mark.parametrize("name", ["lab\n", "lab1\n"])
def test_a_trailing_newline_is_no_valid_name(name: str) -> None:
    with pytest.raises(SpecError, match="invalid cluster name"):
        build_spec(ClusterOptions(name=name), FACTS)


def test_listen_may_name_the_clusters_own_bridge_address() -> None:
    up(subnet="10.209.7.0/24", extra={"listen": "10.209.7.1:0"})
    with pytest.raises(SpecError, match="not an address of this host"):
        up(subnet="10.209.7.0/24", extra={"listen": "10.209.7.2:0"})
