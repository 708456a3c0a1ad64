"""The cluster file (spec/sitefile.py): good files, and one clear error per bad file."""

from __future__ import annotations

from pathlib import Path

import pytest

from vhpc.errors import SpecError
from vhpc.spec.load import ClusterOptions, HostFacts, build_spec
from vhpc.spec.model import ShareSpec
from vhpc.spec.sitefile import find_line, merge, read_site
from vhpc.spec.sizes import MIB

EXAMPLES = Path(__file__).parents[2] / "examples" / "sites"
HOST = HostFacts(online_cpus=(0, 1), mem_total=64 * 1024 * MIB)

UNI = """\
[cluster]
name = "uni"            # the -c name unless -c is given
memory = "1G"           # default per node
cpus = 1
users = ["alice:physics", "bob:chem"]

[[nodes]]
group = "cpu"
count = 8
memory = "512M"
features = ["intel", "avx512"]

[[nodes]]
group = "gpu"
count = 2
cpus = 2
memory = "2G"
gpus = 2
features = ["gpu"]
rack = "r2"

[[partitions]]
name = "cpu"
nodes = ["cpu"]
default = true
max_time = "1-00:00:00"

[[partitions]]
name = "gpu"
nodes = ["gpu"]
max_time = "04:00:00"

[[partitions]]
name = "debug"
nodes = ["cpu", "gpu"]
max_time = "00:30:00"
priority_tier = 10

[[shares]]
host = "/srv/data"
path = "/data"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "site.toml"
    path.write_text(text)
    return path


def test_the_issues_example_file_reads_into_groups_partitions_and_shares(
        tmp_path: Path) -> None:
    options = read_site(write(tmp_path, UNI))
    assert options.name == "uni" and options.memory == "1G" and options.nodes == 10
    assert [(g.name, g.count, g.memory, g.cpus, g.gpus, g.rack) for g in options.groups] == [
        ("cpu", 8, "512M", None, "", ""), ("gpu", 2, "2G", 2, 2, "r2")]
    assert options.users == ("alice:physics", "bob:chem")
    assert [(p.name, p.groups, p.default, p.max_time, p.priority_tier)
            for p in options.partitions] == [
        ("cpu", ("cpu",), True, "1-00:00:00", 0), ("gpu", ("gpu",), False, "04:00:00", 0),
        ("debug", ("cpu", "gpu"), False, "00:30:00", 10)]
    assert options.shares == (ShareSpec("/srv/data", "/data"),)


def test_the_file_builds_named_nodes_with_group_properties_racks_and_partitions(
        tmp_path: Path) -> None:
    spec = build_spec(read_site(write(tmp_path, UNI)), HOST)
    cpu0, gpu1 = spec.node("cpu0"), spec.node("gpu1")
    assert (cpu0.group, cpu0.memory, cpu0.cpus, cpu0.rack) == ("cpu", 512 * MIB, 1, "r1")
    assert cpu0.features == ("cpu", "intel", "avx512")  # the group's name first: its NodeSet
    assert (gpu1.group, gpu1.memory, gpu1.cpus, gpu1.gpus, gpu1.rack) == (
        "gpu", 2048 * MIB, 2, 2, "r2")
    assert [n.name for n in spec.computes] == [*(f"cpu{i}" for i in range(8)), "gpu0", "gpu1"]
    debug = next(p for p in spec.partitions if p.name == "debug")
    assert debug.nodes == tuple(n.name for n in spec.computes)
    assert spec.partitions_of(gpu1) == ("gpu", "debug")


def test_name_from_the_command_line_wins_and_the_name_defaults_to_vhpc(tmp_path: Path) -> None:
    assert read_site(write(tmp_path, UNI), name="other").name == "other"
    assert read_site(write(tmp_path, "[cluster]\nnodes = 2\n")).name == "vhpc"


def test_no_default_partition_makes_the_first_the_default(tmp_path: Path) -> None:
    text = UNI.replace("default = true\n", "")
    assert [p.default for p in read_site(write(tmp_path, text)).partitions] == [
        True, False, False]


def test_default_racks_fill_in_order(tmp_path: Path) -> None:
    text = ('[cluster]\nmemory = "64M"\nrack_size = 2\n'
            '[[nodes]]\ngroup = "a"\ncount = 3\n[[nodes]]\ngroup = "b"\ncount = 2\n')
    spec = build_spec(read_site(write(tmp_path, text)), HOST)
    assert [(n.name, n.rack) for n in spec.computes] == [
        ("a0", "r1"), ("a1", "r1"), ("a2", "r2"), ("b0", "r2"), ("b1", "r3")]


def test_old_plugin_files_with_top_level_keys_still_read(tmp_path: Path) -> None:
    options = read_site(write(tmp_path, 'nodes = 2\nmemory = "200M"\npartition = "batch"\n'))
    assert (options.nodes, options.memory, options.partition) == (2, "200M", "batch")
    assert not options.groups


def test_command_line_flags_override_the_file(tmp_path: Path) -> None:
    options = read_site(write(tmp_path, UNI))
    merged = merge(options, memory="256M", cpus=None, shares=(ShareSpec("/x", "/x"),))
    assert merged.memory == "256M" and merged.cpus == 1
    assert merged.shares == (ShareSpec("/srv/data", "/data"), ShareSpec("/x", "/x"))
    with pytest.raises(SpecError, match="-n counts alike nodes"):
        merge(options, nodes=3)
    flat = ClusterOptions(nodes=2)
    assert merge(flat, nodes=3).nodes == 3


@pytest.mark.parametrize("example", sorted(EXAMPLES.glob("*.toml")), ids=lambda p: p.name)
def test_every_example_site_builds(example: Path) -> None:
    options = read_site(example)
    spec = build_spec(options, HostFacts(online_cpus=(0, 1), mem_total=1 << 50))
    assert spec.computes


def test_the_seed_example_has_16_nodes_of_125m() -> None:
    spec = build_spec(read_site(EXAMPLES / "seed.toml"), HOST)
    assert len(spec.computes) == 16
    assert {n.memory for n in spec.computes} == {125 * MIB}


# -- bad files: one line each, naming the file, the key, its line and the fix -------------

BAD = [
    # (name, file text, what the one-line error must say)
    ("unknown key", '[[nodes]]\ngroup = "cpu"\nmemroy = "1G"\n',
     ["line 3", "[[nodes]] #1", "unknown key 'memroy'", "memory"]),
    ("unknown table", '[nodez]\ngroup = "cpu"\n', ["unknown key 'nodez'", "nodes"]),
    ("count as text", '[[nodes]]\ngroup = "cpu"\ncount = "8"\n',
     ["line 3", "count", "'8'", "count = 8"]),
    ("features not a list", '[[nodes]]\ngroup = "g"\nfeatures = "gpu"\n',
     ["line 3", "features", 'features = ["intel"']),
    ("bad memory size", '[cluster]\nmemory = "lots"\n',
     ["line 2", "[cluster] memory", "invalid memory size 'lots'"]),
    ("memory too small", '[[nodes]]\ngroup = "cpu"\nmemory = "4M"\n',
     ["line 3", "memory 4M is below", "16M"]),
    ("count zero", '[[nodes]]\ngroup = "cpu"\ncount = 0\n', ["line 3", "count 0", "from 1"]),
    ("unknown group in a partition",
     '[[nodes]]\ngroup = "cpu"\n[[partitions]]\nname = "gpu"\nnodes = ["gpu"]\n',
     ["line 5", "[[partitions]] #1 nodes", "'gpu'", "groups: cpu"]),
    ("two default partitions",
     '[[nodes]]\ngroup = "c"\n[[partitions]]\nname = "a"\ndefault = true\n'
     '[[partitions]]\nname = "b"\ndefault = true\n', ["only one partition can be the default"]),
    ("duplicate group", '[[nodes]]\ngroup = "cpu"\n[[nodes]]\ngroup = "cpu"\n',
     ["'cpu' is defined twice"]),
    ("group name with a trailing digit", '[[nodes]]\ngroup = "gpu1"\n',
     ["line 2", "invalid group 'gpu1'", 'group = "cpu"']),
    ("bad max_time", '[[nodes]]\ngroup = "c"\n[[partitions]]\nname = "p"\nmax_time = "4 hours"\n',
     ["line 5", "max_time '4 hours'", "04:00:00"]),
    ("negative priority tier",
     '[[nodes]]\ngroup = "c"\n[[partitions]]\nname = "p"\npriority_tier = -1\n',
     ["line 5", "priority_tier -1", "0 to 65533"]),
    ("relative share", '[[shares]]\nhost = "data"\n', ["line 2", "not an absolute path"]),
    ("system share", '[[shares]]\nhost = "/etc"\n', ["/etc is a system"]),
    ("share over /tmp", '[[shares]]\nhost = "/srv/x"\npath = "/tmp"\n',
     ["line 3", "would cover /tmp", "/data"]),
    ("two shares at one path",
     '[[shares]]\nhost = "/srv/a"\npath = "/data"\n[[shares]]\nhost = "/srv/b"\n'
     'path = "/data/b"\n', ["one would hide the other"]),
    ("bad gpus", '[[nodes]]\ngroup = "gpu"\ngpus = "a100:x"\n', ["line 3", "gpus", "a100:2"]),
    ("not TOML", '[[nodes]\ngroup = "cpu"\n', ["not valid TOML", "line 1"]),
    ("cluster nodes with groups", '[cluster]\nnodes = 3\n[[nodes]]\ngroup = "cpu"\n',
     ["line 2", "[cluster] nodes", "give each group a count"]),
    ("group missing", '[[nodes]]\ncount = 2\n', ["line 1", "required key missing", "group"]),
    ("bad cluster name", '[cluster]\nname = "Uni Lab"\n', ["line 2", "invalid cluster name"]),
    ("partitions without groups", '[[partitions]]\nname = "p"\n', ["[[nodes]] groups"]),
    ("bad users", '[cluster]\nusers = ["alice:physics:x"]\n', ["line 2", "[cluster] users"]),
    ("group feature named like another group",
     '[[nodes]]\ngroup = "cpu"\nfeatures = ["gpu"]\n[[nodes]]\ngroup = "gpu"\n',
     ["feature 'gpu' is the name of another group"]),
]


@pytest.mark.parametrize(("text", "expected"), [(t, e) for _, t, e in BAD],
                         ids=[name for name, _, _ in BAD])
def test_a_bad_file_is_refused_with_file_key_line_and_fix(tmp_path: Path, text: str,
                                                          expected: list[str]) -> None:
    path = write(tmp_path, text)
    with pytest.raises(SpecError) as info:
        read_site(path)
    message = info.value.message
    assert message.startswith(f"{path}:"), message
    assert "\n" not in message
    for part in expected:
        assert part in message, f"{part!r} not in {message!r}"


def test_a_missing_file_says_which() -> None:
    with pytest.raises(SpecError, match=r"cluster file /nonexistent/site\.toml does not exist"):
        read_site("/nonexistent/site.toml")


def test_find_line_finds_keys_in_the_right_table() -> None:
    text = '[cluster]\ncount = 1\n[[nodes]]\ngroup = "a"\n[[nodes]]\ngroup = "b"\ncount = 2\n'
    assert find_line(text, ("nodes", 1, "count")) == 7
    assert find_line(text, ("nodes", 0, "count")) == 3  # not given: the table's header
    assert find_line(text, ("cluster", "count")) == 2
    assert find_line(text, ("partitions", 0, "name")) is None


def test_node_add_group_copies_the_groups_properties_rack_and_partitions(tmp_path: Path) -> None:
    from vhpc.spec.grow import AddRequest, plan_add

    spec = build_spec(read_site(write(tmp_path, UNI)), HOST)
    (gpu2,) = plan_add(spec, AddRequest(group="gpu"), HOST)
    assert (gpu2.name, gpu2.group, gpu2.memory, gpu2.cpus, gpu2.gpus, gpu2.rack) == (
        "gpu2", "gpu", 2048 * MIB, 2, 2, "r2")
    assert gpu2.features == ("gpu",)
    grown = spec.with_nodes((*spec.nodes, gpu2))
    assert grown.partitions_of(gpu2) == ("gpu", "debug")
    assert "gpu2" in next(p for p in grown.partitions if p.name == "debug").nodes
    two = plan_add(spec, AddRequest(group="cpu", count=2, memory="256M"), HOST)
    assert [(n.name, n.memory, n.features) for n in two] == [
        ("cpu8", 256 * MIB, ("cpu", "intel", "avx512")),
        ("cpu9", 256 * MIB, ("cpu", "intel", "avx512"))]
    with pytest.raises(SpecError, match="has no node group 'fpga'"):
        plan_add(spec, AddRequest(group="fpga"), HOST)


def test_the_python_api_reads_the_same_file_and_keywords_override_it(tmp_path: Path) -> None:
    from vhpc.python_api import Cluster

    path = write(tmp_path, UNI)
    site = Cluster(file=path)
    assert site.name == "uni" and [g.name for g in site.options.groups] == ["cpu", "gpu"]
    assert Cluster(file=path, name="hgpy").name == "hgpy"
    assert Cluster(file=path, memory="300M", cpus=2).options.memory == "300M"
    plain = Cluster(name="hgplain")
    assert (plain.options.nodes, plain.options.memory, plain.options.partition) == (
        2, None, "vhpc")  # memory None: 1G capped to the host
    unnamed = Cluster(file=write(tmp_path, '[[nodes]]\ngroup = "cpu"\n'))
    assert unnamed.name.startswith("py")  # a fresh name, as without a file


def test_cluster_gpus_are_the_groups_default_and_partition_flag_conflicts(
        tmp_path: Path) -> None:
    text = '[cluster]\ngpus = "v100:1"\n[[nodes]]\ngroup = "a"\n[[nodes]]\ngroup = "b"\ngpus = 2\n'
    spec = build_spec(read_site(write(tmp_path, text)), HOST)
    assert [(n.name, n.gpus, n.gpu_type) for n in spec.computes] == [
        ("a0", 1, "v100"), ("b0", 2, "")]
    with pytest.raises(SpecError, match="has \\[\\[partitions\\]\\]"):
        merge(read_site(write(tmp_path, UNI)), partition="batch")


def test_node_add_without_a_group_on_a_site_of_groups_is_refused(tmp_path: Path) -> None:
    from vhpc.spec.grow import AddRequest, plan_add

    spec = build_spec(read_site(write(tmp_path, UNI)), HOST)
    with pytest.raises(SpecError, match=r"give --group \(cpu, gpu\)"):
        plan_add(spec, AddRequest(count=1), HOST)
    flat = build_spec(ClusterOptions(name="lab", nodes=1), HOST)
    assert [n.name for n in plan_add(flat, AddRequest(count=1), HOST)] == ["compute1"]
