"""Faults without a kernel: nft script and tc argv as text, the checks of a request, the
book of active faults, the controller over a fake kernel adapter, teardown of the table."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from tests.unit.fake_runtime import FakeRuntime
from vhpc.cli.fault_cmds import parse_nodes
from vhpc.cluster.cluster import Cluster
from vhpc.cluster.fault_control import FaultController
from vhpc.cluster.faults import (
    ActiveFault,
    FaultBook,
    FaultKind,
    FaultSpec,
    check_request,
    parse_rate,
    resolve_daemon,
)
from vhpc.cluster.ledger import Kind, Ledger
from vhpc.cluster.teardown import remove_owned
from vhpc.errors import ClusterStateError, FaultError, NetemMissingError, NoSuchFaultError
from vhpc.runtime.hostops import CommandResult
from vhpc.runtime.netfault import Cut, Loss, qdisc_argv, render_table, tbf_args
from vhpc.runtime.proc import ProcessRecord
from vhpc.spec.grow import NoSuchNodeError
from vhpc.spec.load import ClusterOptions, HostFacts, build_spec
from vhpc.spec.model import ClusterSpec
from vhpc.spec.paths import ClusterPaths
from vhpc.spec.sizes import MIB

GOLDEN = Path(__file__).parent / "golden"
HOST = HostFacts(online_cpus=(0, 1), mem_total=24 * 1024 * MIB)
DAEMONS = ["munged@slurm", "slurmctld@slurm", "etcd@dns", "slurmd@compute0",
           "slurmd@compute1"]


def spec(nodes: int = 3) -> ClusterSpec:
    return build_spec(ClusterOptions(name="fk", nodes=nodes, accounting=False), HOST)


# -- the kernel's language, as text ----------------------------------------------------
def test_nft_script_replaces_the_table_in_one_transaction() -> None:
    script = render_table("vhpc-fk", [Cut("f1", ("vh1n10",)),
                                      Cut("f2", ("vh1n11", "vh1n12"), ("vh1n2",))],
                          [Loss("f3", "vh1n13", 25.5)])
    assert script == (GOLDEN / "faults.nft").read_text()


def test_cuts_with_addresses_match_at_the_senders_port_across_leaves() -> None:
    script = render_table("vhpc-fk", [
        Cut("f1", ("vh1n10",), ("vh1n2",), ("10.1.0.10",), ("10.1.0.2",)),
        Cut("f2", ("vh1n11", "vh1n12"), (), ("10.1.0.11", "10.1.0.12"))], [])
    assert script == (GOLDEN / "faults-addresses.nft").read_text()
    # the sender's own port and the peer's address: a frame leaving a leaf by its uplink
    assert 'iifname "vh1n10" ip daddr 10.1.0.2 drop comment "f1"' in script
    assert 'iifname "vh1n2" ip daddr 10.1.0.10 drop comment "f1"' in script
    # cut from all but each other: traffic to the other dev's address passes on any port
    assert ('iifname { "vh1n11", "vh1n12" } oifname != { "vh1n11", "vh1n12" } '
            'ip daddr != { 10.1.0.11, 10.1.0.12 } drop') in script


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("nft") is None,
                    reason="nft -c needs root and nftables")
def test_nft_accepts_the_rendered_tables() -> None:
    for golden in ("faults.nft", "faults-addresses.nft"):
        text = (GOLDEN / golden).read_text().replace("vhpc-fk", "vhpc-unit-check")
        subprocess.run(["nft", "-c", "-f", "-"], input=text, text=True, check=True,
                       capture_output=True)


def test_loss_thresholds_in_hundredths_and_total_loss_without_a_draw() -> None:
    rules = render_table("t", [], [Loss("f1", "a", 0.001), Loss("f2", "b", 99.99),
                                   Loss("f3", "c", 100)])
    assert 'iifname "a" numgen random mod 10000 < 1 drop' in rules
    assert 'iifname "b" numgen random mod 10000 < 9999 drop' in rules
    assert 'iifname "c" drop comment "f3"' in rules


def test_an_empty_table_has_its_chains_and_no_rule() -> None:
    script = render_table("vhpc-fk", [], [])
    assert "drop" not in script and script.count("chain ") == 3


def test_tc_argv_on_the_host_side_and_inside_the_node() -> None:
    assert qdisc_argv("vh1n10", None, tbf_args(10_000_000)) == [
        "tc", "qdisc", "replace", "dev", "vh1n10", "root", "tbf", "rate", "10000000bit",
        "burst", "12500", "latency", "100ms"]
    assert qdisc_argv("eth0", Path("/ns/compute0.net"), None) == [
        "nsenter", "--net=/ns/compute0.net", "tc", "qdisc", "del", "dev", "eth0", "root"]
    assert tbf_args(64_000)[4] == "3200"  # at least two full frames of burst


@pytest.mark.parametrize("text,bits", [("10mbit", 10_000_000), ("512kbit", 512_000),
                                       ("1gbit", 10**9), ("1.5mbit", 1_500_000),
                                       ("100mbps", 800_000_000), ("8kbit", 8000)])
def test_rates_in_tc_units(text: str, bits: int) -> None:
    assert parse_rate(text) == bits


@pytest.mark.parametrize("text,match", [("fast", "not a rate"), ("10", "not a rate"),
                                        ("10furlong", "not a rate"), ("1bit", "out of range"),
                                        ("200gbit", "out of range")])
def test_bad_rates_are_one_line(text: str, match: str) -> None:
    with pytest.raises(FaultError, match=match):
        parse_rate(text)


# -- checks of a request ----------------------------------------------------------------
def test_partition_from_controller_resolves_the_controller_node() -> None:
    s = spec()
    checked = check_request(FaultSpec(FaultKind.PARTITION, ("compute0", "compute0"),
                                      ("controller",)), s, FaultBook(), DAEMONS)
    assert checked.nodes == ("compute0",) and checked.peers == (s.controller.name,)


@pytest.mark.parametrize("request_,error,match", [
    (FaultSpec(FaultKind.LOSS, ("compute9",), percent=5), NoSuchNodeError, "no node"),
    (FaultSpec(FaultKind.FREEZE, ()), FaultError, "no node named"),
    (FaultSpec(FaultKind.LOSS, ("compute0",), percent=0), FaultError, "out of range"),
    (FaultSpec(FaultKind.LOSS, ("compute0",), percent=100.5), FaultError, "out of range"),
    (FaultSpec(FaultKind.LOSS, ("compute0",)), FaultError, "out of range"),
    (FaultSpec(FaultKind.RATE, ("compute0",), rate="2bit"), FaultError, "out of range"),
    (FaultSpec(FaultKind.DELAY, ("compute0",), delay_ms=0), FaultError, "out of range"),
    (FaultSpec(FaultKind.PARTITION, ("compute0",), ("compute0",)), FaultError, "itself"),
    (FaultSpec(FaultKind.KILL, daemon="nosuchd"), FaultError, "no supervised daemon"),
    (FaultSpec(FaultKind.KILL, daemon="slurmd"), FaultError, "runs on 2 nodes"),
])
def test_bad_requests_are_refused_with_one_line(request_: FaultSpec, error: type[Exception],
                                                 match: str) -> None:
    with pytest.raises(error, match=match) as info:
        check_request(request_, spec(), FaultBook(), DAEMONS)
    assert "\n" not in str(info.value)


def test_a_fault_on_a_stopped_node_is_refused() -> None:
    s = spec()
    stopped = s.with_nodes(tuple(replace(n, stopped=True) if n.name == "compute1" else n
                                 for n in s.nodes))
    with pytest.raises(ClusterStateError, match="'compute1' is stopped") as info:
        check_request(FaultSpec(FaultKind.FREEZE, ("compute1",)), stopped, FaultBook(),
                      DAEMONS)
    assert info.value.fix == "start it first: vhpc node start compute1"


def test_one_qdisc_fault_a_node_and_partitions_may_overlap() -> None:
    book = FaultBook()
    book.add(FaultSpec(FaultKind.RATE, ("compute0",), rate="1mbit"), 1.0)
    book.add(FaultSpec(FaultKind.PARTITION, ("compute0",)), 2.0)
    with pytest.raises(FaultError, match="already has fault f1") as info:
        check_request(FaultSpec(FaultKind.DELAY, ("compute0",), delay_ms=5), spec(), book,
                      DAEMONS)
    assert info.value.fix == "clear it first: vhpc fault clear f1"
    check_request(FaultSpec(FaultKind.PARTITION, ("compute0",), ("compute1",)), spec(),
                  book, DAEMONS)


def test_a_daemon_alone_names_the_only_one_running() -> None:
    assert resolve_daemon("munged", DAEMONS) == "munged@slurm"
    assert resolve_daemon("slurmd@compute1", DAEMONS) == "slurmd@compute1"


# -- the book -----------------------------------------------------------------------------
def test_book_ids_are_never_reused_and_kills_are_not_kept() -> None:
    book = FaultBook()
    f1 = book.add(FaultSpec(FaultKind.FREEZE, ("compute0",)), 1.0)
    kill = book.add(FaultSpec(FaultKind.KILL, daemon="munged@slurm"), 2.0)
    assert (f1.id, kill.id) == ("f1", "f2") and book.faults == [f1]
    assert kill.to_dict()["active"] is False
    book.remove([f1])
    assert book.add(FaultSpec(FaultKind.FREEZE, ("compute0",)), 3.0).id == "f3"
    again = FaultBook.from_dict(json.loads(json.dumps(book.to_dict())))
    assert again == book
    with pytest.raises(NoSuchFaultError, match=r"no active fault 'f1'.*f3"):
        again.select("f1")


def test_select_by_kind_and_node() -> None:
    book = FaultBook()
    part = book.add(FaultSpec(FaultKind.PARTITION, ("compute0", "compute1")), 1.0)
    frz = book.add(FaultSpec(FaultKind.FREEZE, ("compute1",)), 1.0)
    assert book.select(kind=FaultKind.PARTITION, nodes=["compute1"]) == [part]
    assert book.select(nodes=["compute1"]) == [part, frz]
    assert book.select(kind=FaultKind.FREEZE, nodes=["compute0"]) == []
    assert isinstance(book.select()[0], ActiveFault)


# -- the controller over a fake kernel ------------------------------------------------------
class FakeFaults:
    """Records what the controller asks of the kernel; `fail_netem` as a kernel without it."""

    def __init__(self, fail_netem: bool = False) -> None:
        self.tables: dict[str, str] = {}
        self.qdiscs: dict[tuple[str, str], list[str]] = {}
        self.frozen: set[str] = set()
        self.killed: list[int] = []
        self.fail_netem = fail_netem

    def apply_table(self, script: str) -> None:
        self.tables[script.splitlines()[0].split()[-1]] = script

    def delete_table(self, table: str) -> None:
        self.tables.pop(table, None)

    def set_qdisc(self, dev: str, netns: Path | None, args: list[str] | None) -> None:
        if args and args[0] == "netem" and self.fail_netem:
            raise NetemMissingError("this kernel has no netem qdisc (module sch_netem)")
        if args is None:
            self.qdiscs.pop((dev, str(netns)), None)
        else:
            self.qdiscs[(dev, str(netns))] = args

    def set_frozen(self, group: str, frozen: bool) -> None:
        (self.frozen.add if frozen else self.frozen.discard)(group)

    def kill(self, record: ProcessRecord) -> bool:
        self.killed.append(record.pid)
        return True


class FakeSlurm:
    def __init__(self, reasons: dict[str, str]) -> None:
        self.reasons = reasons
        self.ran: list[list[str]] = []

    def run(self, argv: list[str], check: bool = True, timeout: float = 30.0,
            input: str | None = None) -> CommandResult:
        self.ran.append(argv)
        if "state=resume" in argv:  # as slurmctld: a resumed node has no reason left
            for name in argv[2].removeprefix("nodename=").split(","):
                self.reasons.pop(name, None)
        return CommandResult(argv, 0, "", "")

    def node_states(self) -> dict[str, str]:
        return {}

    def node_reasons(self) -> dict[str, str]:
        return self.reasons


def controller(tmp_path: Path, kernel: FakeFaults,
               reasons: dict[str, str] | None = None) -> tuple[FaultController, Cluster]:
    cluster = Cluster(spec(), ClusterPaths(tmp_path / "fk"), FakeRuntime())
    cluster.paths.root.mkdir(parents=True)
    cluster.slurm = FakeSlurm(reasons or {})  # type: ignore[assignment]
    return FaultController(cluster, kernel, clock=lambda: 100.0), cluster


def test_partition_and_loss_make_the_table_and_clearing_deletes_it(tmp_path: Path) -> None:
    kernel = FakeFaults()
    ctl, cluster = controller(tmp_path, kernel, {"compute0": "Not responding"})
    s = cluster.spec
    [part] = ctl.add(FaultSpec(FaultKind.PARTITION, ("compute0",)))
    ctl.add(FaultSpec(FaultKind.LOSS, ("compute1",), percent=100))
    script = kernel.tables["vhpc-fk"]
    veth0, veth1 = s.veth_of(s.node("compute0")), s.veth_of(s.node("compute1"))
    assert f'iifname "{veth0}" drop comment "f1"' in script
    assert f'iifname "{veth1}" drop comment "f2"' in script  # 100%: no draw (nft: < 10000)
    assert [e.ident for e in cluster.ledger.entries(Kind.NFT_TABLE)] == ["vhpc-fk"]
    assert json.loads((cluster.paths.root / "faults.json").read_text())["next_id"] == 3
    assert ctl.clear(part.id) == [part]
    assert "comment \"f1\"" not in kernel.tables["vhpc-fk"]  # re-rendered without it
    assert cluster.slurm.ran == [  # type: ignore[attr-defined]
        ["scontrol", "update", "nodename=compute0", "state=resume"]]
    ctl.clear()
    assert kernel.tables == {} and cluster.ledger.entries(Kind.NFT_TABLE) == []
    kinds = [e.kind for e in cluster.events.recent()]
    assert kinds.count("fault_injected") == 2 and kinds.count("fault_cleared") == 2
    assert "fault_resumed" in kinds


def test_node_faults_are_kept_per_node_and_undone_on_both_link_ends(tmp_path: Path) -> None:
    kernel = FakeFaults()
    ctl, cluster = controller(tmp_path, kernel)
    made = ctl.add(FaultSpec(FaultKind.RATE, ("compute0", "compute1"), rate="10mbit"))
    assert [f.spec.nodes for f in made] == [("compute0",), ("compute1",)]
    assert len(kernel.qdiscs) == 4  # host-side veth and the node's eth0, per node
    ctl.add(FaultSpec(FaultKind.FREEZE, ("compute2",)))
    assert kernel.frozen == {"vhpc-fk/compute2"}
    assert ctl.clear(kind=FaultKind.FREEZE, nodes=["compute2"])[0].spec.nodes == ("compute2",)
    assert kernel.frozen == set()
    ctl.clear(nodes=["compute1"])
    assert {dev for dev, _ in kernel.qdiscs} == {cluster.spec.veth_of(
        cluster.spec.node("compute0")), "eth0"}
    # a restarted manager reads the same faults back
    again = FaultController(cluster, kernel)
    assert [f.id for f in again.active()] == [made[0].id]


def test_delay_without_netem_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    kernel = FakeFaults(fail_netem=True)
    ctl, cluster = controller(tmp_path, kernel)
    with pytest.raises(NetemMissingError, match="sch_netem"):
        ctl.add(FaultSpec(FaultKind.DELAY, ("compute0",), delay_ms=50))
    assert ctl.active() == [] and kernel.qdiscs == {} and kernel.tables == {}
    assert not any(e.kind == "fault_injected" for e in cluster.events.recent())


def test_no_fault_once_teardown_began(tmp_path: Path) -> None:
    ctl, cluster = controller(tmp_path, FakeFaults())
    cluster.closing = True
    with pytest.raises(ClusterStateError, match="torn down"):
        ctl.add(FaultSpec(FaultKind.FREEZE, ("compute0",)))


def test_teardown_deletes_the_recorded_table(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    ledger.add(Kind.NFT_TABLE, "vhpc-fk")
    ledger.add(Kind.CGROUP, "vhpc-fk/compute0", "compute0")
    dropped: list[str] = []
    thawed: list[str] = []
    assert remove_owned(ledger, FakeRuntime(), master_of=lambda _: None,
                        drop_table=dropped.append, thaw=thawed.append) == []
    assert dropped == ["vhpc-fk"] and thawed == ["vhpc-fk/compute0"] and ledger.is_empty()


def test_thaw_without_a_driver_on_either_version(tmp_path: Path) -> None:
    from vhpc.runtime.cgroups import thaw

    v1 = tmp_path / "freezer" / "vhpc-fk" / "compute0"
    v1.mkdir(parents=True)
    (v1 / "freezer.state").write_text("FROZEN")
    v2 = tmp_path / "vhpc-fk" / "compute0"
    v2.mkdir(parents=True)
    (v2 / "cgroup.freeze").write_text("1")
    thaw("vhpc-fk/compute0", tmp_path)
    assert (v1 / "freezer.state").read_text() == "THAWED"
    assert (v2 / "cgroup.freeze").read_text() == "0"
    thaw("vhpc-fk/gone", tmp_path)  # nothing there: nothing to do


# -- the CLI's node lists --------------------------------------------------------------
def test_node_lists_and_ranges() -> None:
    assert parse_nodes(["compute[1-3,7]", "slurm,compute2"]) == [
        "compute1", "compute2", "compute3", "compute7", "slurm"]
    assert parse_nodes(["n[08-10]"]) == ["n08", "n09", "n10"]


@pytest.mark.parametrize("arg", ["compute[3-1]", "compute[a]", "c[1-2]x[3]"])
def test_bad_node_ranges_are_usage_errors(arg: str) -> None:
    import click

    with pytest.raises(click.UsageError, match="node range"):
        parse_nodes([arg])


# -- the HTTP contract, through the real client ------------------------------------------
def test_fault_endpoints_through_the_client() -> None:
    from tests.unit.fake_manager_api import FakeManagerAPI, make_app, manager_client

    api = FakeManagerAPI()
    client = manager_client(make_app(api))
    made = client.add_fault("freeze", ["compute0", "compute1"])
    assert [f.id for f in made] == ["f1", "f2"]
    assert [f.id for f in client.list_faults()] == ["f1", "f2"]
    assert [f.id for f in client.clear_faults(kind="freeze", nodes=["compute1"])] == ["f2"]
    assert [f.id for f in client.clear_faults("f1")] == ["f1"]
    with pytest.raises(NoSuchNodeError, match="no node 'nodeX'"):
        client.add_fault("loss", ["nodeX"], percent=5)
    from vhpc.errors import RequestError

    with pytest.raises(RequestError):
        client.add_fault("explode", ["compute0"])


# -- the CLI over a fake manager ---------------------------------------------------------
def test_cli_sends_the_request_and_prints_data_on_stdout(monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path: Path) -> None:
    from typing import Any

    from tests.unit.cli_fakes import FakeManager, install, make_spec, run_vhpc

    class FaultyManager(FakeManager):
        def add_fault(self, kind: str, nodes: list[str] | None = None, **kw: Any
                      ) -> list[dict[str, Any]]:
            self.calls.append(("add_fault", (kind, nodes, kw)))
            return [{"id": "f1", "kind": kind, "nodes": nodes or [], "since": 1.0,
                     "description": f"{','.join(nodes or [])} cut off from slurm"}]

        def list_faults(self) -> list[dict[str, Any]]:
            return [{"id": "f1", "kind": "partition", "nodes": ["compute0"], "since": 1.0,
                     "description": "compute0 cut off from slurm"}]

        def clear_faults(self, fault_id: str | None = None, kind: str | None = None,
                         nodes: list[str] | None = None) -> list[dict[str, Any]]:
            self.calls.append(("clear_faults", (fault_id, kind, nodes)))
            return []

    fake = install(monkeypatch, tmp_path, FaultyManager(make_spec()))
    result = run_vhpc("-c", "hbt", "fault", "partition", "compute[0-1]", "--from",
                      "controller")
    assert result.code == 0 and result.stdout == "f1\tcompute0,compute1 cut off from slurm\n"
    assert fake.calls[-1] == ("add_fault", ("partition", ["compute0", "compute1"],
                                            {"peers": ["controller"]}))
    assert "f1" in run_vhpc("-c", "hbt", "fault", "ls").stdout
    assert json.loads(run_vhpc("-c", "hbt", "fault", "ls", "--json").stdout)[0]["id"] == "f1"
    thaw = run_vhpc("-c", "hbt", "fault", "thaw", "compute1")
    assert thaw.code == 0 and "no frozen node to clear" in thaw.stderr
    # a slice: mypy keeps fake.calls[-1] narrowed to the add_fault tuple asserted above
    assert fake.calls[-1:] == [("clear_faults", (None, "freeze", ["compute1"]))]
    bad = run_vhpc("-c", "hbt", "fault", "clear")
    assert bad.code == 2 and "give a fault ID or --all" in bad.stderr
    assert run_vhpc("-c", "hbt", "fault", "loss", "compute0", "lots").code == 2
