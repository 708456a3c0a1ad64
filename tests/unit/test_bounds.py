"""Every bound is checked before anything is built: the worst inputs cost no memory.

Issue 13: `vhpc node add --count 100000000` (or POST /api/v1/nodes {"count": 1e30}) built
the whole name list before checking capacity and the manager grew to 24 GB. Here the
real planning functions the manager runs (spec.grow.plan_add, spec.load.build_spec) get
the worst inputs, measured with tracemalloc: each is refused with a one-line SpecError,
and the peak allocation stays small.
"""

from __future__ import annotations

import ipaddress
import tracemalloc
from collections.abc import Callable

import pytest

from vhpc.errors import SpecError, UserError
from vhpc.spec import bounds, grow
from vhpc.spec.grow import AddRequest, plan_add
from vhpc.spec.load import ClusterOptions, HostFacts, build_spec
from vhpc.spec.model import ClusterSpec
from vhpc.spec.placement import parse_cpulist
from vhpc.spec.sizes import MIB, parse_size

FACTS = HostFacts(online_cpus=(0, 1), mem_total=64 << 30,
                  taken_subnets=(ipaddress.IPv4Network("192.0.2.0/24"),))
PEAK_LIMIT = 1 << 20  # 1 MiB: a refused request may cost a message, never a list of nodes


def spec_of(n: int = 2) -> ClusterSpec:
    return build_spec(ClusterOptions(name="hebound", nodes=n, memory="100M"), FACTS)


def peak_of(call: Callable[[], object]) -> tuple[int, BaseException | None]:
    """Peak bytes allocated while `call` runs, and what it raised."""
    tracemalloc.start()
    error: BaseException | None = None
    try:
        call()
    except BaseException as err:
        error = err
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak, error


HUGE = 10**30
WORST_ADDS = [
    pytest.param(AddRequest(count=100_000_000), "--count 100000000", id="count-1e8"),
    pytest.param(AddRequest(count=HUGE), "--count 100000000000", id="count-1e30"),
    pytest.param(AddRequest(count=-HUGE), "must be from 1", id="count-negative"),
    pytest.param(AddRequest(names=tuple(f"n{i}" for i in range(20_000))), "20000 node names",
                 id="names-20000"),
    pytest.param(AddRequest(names=("x" * 5_000_000,)), "too long", id="name-5MB"),
    pytest.param(AddRequest(memory="9" * 5_000_000), "invalid memory size", id="memory-5MB"),
    pytest.param(AddRequest(memory="9" * 400 + "G"), "invalid memory size", id="memory-inf"),
    pytest.param(AddRequest(memory="1000000T"), "a node may have", id="memory-1e6T"),
    pytest.param(AddRequest(cpuset="0-99999999999"), "above the kernel's largest CPU id",
                 id="cpuset-range"),
    pytest.param(AddRequest(cpuset="0," * 1_000_000), "invalid CPU list", id="cpuset-long"),
    pytest.param(AddRequest(cpus=HUGE), "--cpus", id="cpus-1e30"),
    pytest.param(AddRequest(cpus=0), "--cpus 0", id="cpus-0"),
    pytest.param(AddRequest(features=tuple("f" * 10 for _ in range(100_000))),
                 "at most 32", id="features-many"),
    pytest.param(AddRequest(features=("f" * 5_000_000,)), "too long", id="feature-5MB"),
]


@pytest.mark.parametrize(("request_", "message"), WORST_ADDS)
def test_worst_node_add_is_refused_without_allocating(request_: AddRequest,
                                                      message: str) -> None:
    spec = spec_of()
    peak, error = peak_of(lambda: plan_add(spec, request_, FACTS))
    assert isinstance(error, SpecError), error
    assert message in str(error) and "\n" not in str(error)
    assert peak < PEAK_LIMIT, f"{peak} bytes allocated to refuse it"


WORST_UPS = [
    pytest.param(ClusterOptions(name="heb", nodes=100_000), "-n 100000: must be from 1 to 2048",
                 id="nodes-1e5"),
    pytest.param(ClusterOptions(name="heb", nodes=HUGE), "-n 100000000000", id="nodes-1e30"),
    pytest.param(ClusterOptions(name="heb", max_nodes=HUGE), "--max-nodes", id="max-nodes-1e30"),
    pytest.param(ClusterOptions(name="heb", max_nodes=0), "--max-nodes 0", id="max-nodes-0"),
    pytest.param(ClusterOptions(name="heb", cpus=0), "--cpus 0", id="cpus-0"),
    pytest.param(ClusterOptions(name="heb", cpuset="0-4294967295"), "largest CPU id",
                 id="cpuset-range"),
    pytest.param(ClusterOptions(name="heb", memory="1" * 1_000_000), "invalid memory size",
                 id="memory-1MB"),
    pytest.param(ClusterOptions(name="heb", partition="p" * 1_000_000), "too long",
                 id="partition-1MB"),
    pytest.param(ClusterOptions(name="h" * 1_000_000), "invalid cluster name", id="name-1MB"),
    pytest.param(ClusterOptions(name="heb", extra=(("listen", "1" * 1_000_000),)), "too long",
                 id="listen-1MB"),
]


@pytest.mark.parametrize(("options", "message"), WORST_UPS)
def test_worst_up_options_are_refused_without_allocating(options: ClusterOptions,
                                                         message: str) -> None:
    peak, error = peak_of(lambda: build_spec(options, FACTS))
    assert isinstance(error, SpecError), error
    assert message in str(error) and "\n" not in str(error)
    assert peak < PEAK_LIMIT + 2 * len(options.name), f"{peak} bytes allocated to refuse it"


def test_up_with_100000_nodes_is_a_one_line_error_not_a_value_error() -> None:
    # was: internal error: ValueError: new prefix must be longer
    with pytest.raises(SpecError, match="a cluster holds at most 2048 compute nodes"):
        build_spec(ClusterOptions(name="heb", nodes=100_000), FACTS)


def test_the_largest_cluster_still_plans() -> None:
    spec = build_spec(ClusterOptions(name="heb", nodes=bounds.MAX_COMPUTE_NODES,
                                     memory="16M"), FACTS)
    assert len(spec.computes) == bounds.MAX_COMPUTE_NODES
    assert spec.max_nodes == bounds.MAX_COMPUTE_NODES


def test_max_nodes_past_the_subnet_is_refused() -> None:
    with pytest.raises(SpecError, match="holds at most 245 compute nodes: use --max-nodes 245"):
        build_spec(ClusterOptions(name="heb", max_nodes=300), FACTS)


def test_node_add_count_zero_is_refused_but_no_count_adds_one() -> None:
    with pytest.raises(SpecError, match="--count 0: must be from 1"):
        grow.check_add_count(0)
    assert len(plan_add(spec_of(), AddRequest(), FACTS)) == 1


def test_count_cannot_pass_max_nodes_whatever_its_size() -> None:
    spec = build_spec(ClusterOptions(name="heb", nodes=2, max_nodes=3), FACTS)
    with pytest.raises(SpecError, match="MaxNodeCount"):
        plan_add(spec, AddRequest(count=2), FACTS)


def test_node_add_defaults_to_the_cluster_memory_not_the_last_node() -> None:
    spec = spec_of()
    big = plan_add(spec, AddRequest(names=("big",), memory="300M"), FACTS)
    spec = spec.with_nodes(spec.nodes + big)
    added = plan_add(spec, AddRequest(), FACTS)
    assert added[0].memory == 100 * MIB  # `up --memory 100M`, not big's 300M


def test_node_memory_survives_the_spec_json() -> None:
    spec = spec_of()
    assert ClusterSpec.from_dict(spec.to_dict()).node_memory == 100 * MIB


def test_old_specs_without_node_memory_use_the_first_compute() -> None:
    data = spec_of().to_dict()
    del data["node_memory"]
    old = ClusterSpec.from_dict(data)
    assert grow.default_node_memory(old) == 100 * MIB


@pytest.mark.parametrize("text", ["0-", "-3", "3-1", "a", "1_0", "0-2,x"])
def test_bad_cpu_lists_are_refused(text: str) -> None:
    with pytest.raises(SpecError, match="invalid CPU list"):
        parse_cpulist(text)


@pytest.mark.parametrize("value", [True, 1.5, "3", None])
def test_counts_must_be_whole_numbers(value: object) -> None:
    with pytest.raises(SpecError, match="whole number"):
        bounds.check_int(value, "--count", 1, 10)


def test_sizes_refuse_out_of_range_numbers() -> None:
    with pytest.raises(SpecError):
        parse_size(-1)
    with pytest.raises(SpecError):
        parse_size(HUGE)
    assert parse_size("1.5G") == 1536 * MIB


def test_duplicate_names_are_refused_before_anything() -> None:
    with pytest.raises(SpecError, match="'compute0' is named twice"):
        grow.check_removable(spec_of(), ["compute0", "compute0"])
    with pytest.raises(SpecError, match="named twice"):
        bounds.check_distinct(["compute3", "compute3"])
    with pytest.raises(UserError, match="named twice"):
        plan_add(spec_of(), AddRequest(names=("a1", "a1")), FACTS)
