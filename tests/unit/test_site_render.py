"""A heterogeneous site in Slurm's files (golden text), its JSON Schema, and shares."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vhpc.errors import SpecError
from vhpc.services import slurm, slurm_site
from vhpc.spec.load import HostFacts, build_spec
from vhpc.spec.model import ShareSpec
from vhpc.spec.paths import ClusterPaths
from vhpc.spec.shares import check_host_dirs, check_share, check_shares, parse_share, visible_path
from vhpc.spec.sitefile import read_site
from vhpc.spec.sitefile_schema import (
    ClusterTable,
    NodesTable,
    PartitionTable,
    ShareTable,
    json_schema,
)
from vhpc.spec.sizes import MIB

GOLDEN = Path(__file__).parent / "golden"
EXAMPLES = Path(__file__).parents[2] / "examples" / "sites"
HOST = HostFacts(online_cpus=(0, 1), mem_total=64 * 1024 * MIB)
SPEC = build_spec(read_site(EXAMPLES / "university.toml"), HOST)
PATHS = ClusterPaths(Path("/var/lib/vhpc/uni"))


def test_site_slurm_conf_lines_match_golden() -> None:
    # Only the site's lines are golden here (the rest is tests/unit/golden/slurm.conf's).
    site = slurm_site.partition_lines(SPEC) + slurm_site.topology_lines(SPEC)
    assert "\n".join(site) + "\n" == (GOLDEN / "slurm-site.conf").read_text()
    lines = slurm.render_slurm_conf(SPEC, PATHS).splitlines()
    start = lines.index(site[0])
    assert lines[start:start + len(site)] == site
    assert "NodeSet=bigmem Feature=bigmem" in lines
    assert ("PartitionName=cpu Nodes=cpu,bigmem Default=YES MaxTime=1-00:00:00 State=UP"
            in lines)
    assert ("PartitionName=debug Nodes=cpu,gpu Default=NO MaxTime=00:30:00 PriorityTier=10 "
            "State=UP") in lines
    assert "TopologyPlugin=topology/tree" in lines
    assert "TopologyParam=TopoOptional" in lines  # dynamic nodes are left out of the tree
    assert "EnforcePartLimits=ALL" in lines  # sbatch -p gpu -N2 is refused at once


def test_site_topology_conf_matches_golden() -> None:
    text = slurm_site.render_topology_conf(SPEC)
    assert text == (GOLDEN / "topology-site.conf").read_text()
    assert "SwitchName=r1 Nodes=cpu0,cpu1,cpu2,cpu3,bigmem0,bigmem1" in text
    assert "SwitchName=r9 Nodes=gpu0" in text  # the file's rack
    assert text.endswith("SwitchName=root Switches=r1,r9\n")


def test_a_node_registers_with_its_groups_feature_first() -> None:
    daemon = slurm.slurmd(SPEC, PATHS, SPEC.node("gpu0"))
    conf = daemon.argv[daemon.argv.index("--conf") + 1]
    assert "CPUs=2 RealMemory=2048" in conf
    assert "Feature=gpu" in conf and "Gres=gpu:a100:2" in conf


def test_a_flag_made_cluster_keeps_one_partition_over_all_nodes_and_no_racks() -> None:
    from vhpc.spec.load import ClusterOptions

    spec = build_spec(ClusterOptions(name="lab", nodes=2), HOST)
    assert slurm_site.partition_lines(spec) == [
        "PartitionName=vhpc Nodes=ALL Default=YES MaxTime=INFINITE State=UP"]
    assert slurm_site.topology_lines(spec) == []
    assert spec.partitions_of(spec.computes[0]) == ("vhpc",)


def test_racks_sort_naturally() -> None:
    from dataclasses import replace

    nodes = tuple(replace(n, rack="r10" if n.name == "cpu0" else n.rack) for n in SPEC.nodes)
    text = slurm_site.render_topology_conf(SPEC.with_nodes(nodes))
    assert text.endswith("Switches=r1,r9,r10\n")


# -- the schema covers every key the parser accepts ---------------------------------

def test_the_schema_names_every_key_of_every_table() -> None:
    schema = json_schema()
    defs = schema["$defs"]
    for model in (ClusterTable, NodesTable, PartitionTable, ShareTable):
        props = defs[model.__name__]["properties"]
        assert set(props) == set(model.model_fields), model.__name__
        assert defs[model.__name__]["additionalProperties"] is False
        assert all(p.get("description") for p in props.values())
    assert set(schema["properties"]) == {"cluster", "nodes", "partitions", "shares"}
    json.dumps(schema)  # plain JSON


def test_the_issues_keys_are_in_the_schema() -> None:
    defs = json_schema()["$defs"]
    assert {"name", "memory", "cpus", "users"} <= set(defs["ClusterTable"]["properties"])
    assert {"group", "count", "memory", "cpus", "gpus", "features", "rack"} <= set(
        defs["NodesTable"]["properties"])
    assert {"name", "nodes", "default", "max_time", "priority_tier"} <= set(
        defs["PartitionTable"]["properties"])
    assert {"host", "path"} == set(defs["ShareTable"]["properties"])


# -- shares ---------------------------------------------------------------------------

def test_share_flag_form() -> None:
    assert parse_share("/srv/data") == ShareSpec("/srv/data", "/srv/data")
    assert parse_share("/srv/data:/data") == ShareSpec("/srv/data", "/data")


@pytest.mark.parametrize(("host", "path", "message"), [
    ("srv/data", "/data", "not an absolute path"),
    ("/", "/data", "/ is a system"),
    ("/etc/x", "/data", "/etc is a system"),
    ("/proc", "/data", "/proc is a system"),
    ("/var/lib/vhpc/other", "/data", "/var/lib/vhpc is a system"),
    ("/var", "/data", "/var/lib/vhpc is a system"),  # it holds every cluster's state
    ("/srv/a", "/etc", "would cover /etc"),
    ("/srv/a", "/tmp", "would cover /tmp"),
    ("/srv/a", "/var/tmp", "would cover /var"),
    ("/srv/a", "/home", "would cover /home"),
    ("/srv/a", "/run/x", "would cover /run"),
    ("/srv/a", "/dev/x", "would cover /dev"),
    ("/srv/a", "/var/lib", "would cover /var"),
    ("/srv/my data", "/data", "spaces, commas or newlines"),
])
def test_bad_shares_are_refused(host: str, path: str, message: str) -> None:
    with pytest.raises(SpecError, match=message.replace(".", r"\.")):
        check_share(ShareSpec(host, path))


def test_a_share_may_lie_inside_a_nodes_own_tmp() -> None:
    assert check_share(ShareSpec("/tmp/work", "/tmp/work")) == ShareSpec("/tmp/work",
                                                                         "/tmp/work")
    assert check_share(ShareSpec("/srv/a", "/var/tmp/a")).path == "/var/tmp/a"


def test_share_mounts_come_before_the_private_dirs_and_tmp_ones_go_inside_them() -> None:
    from vhpc.cluster.node import node_mounts

    shares = (ShareSpec("/tmp/work", "/tmp/work"), ShareSpec("/srv/data", "/data"))
    node = SPEC.node("cpu0")
    mounts = node_mounts(PATHS, node, node.memory, shares)
    targets = [m.target for m in mounts]
    private = "/var/lib/vhpc/uni/nodes/cpu0/tmp"
    assert targets.index(private + "/work") < targets.index("/tmp")
    assert targets.index("/data") < targets.index("/tmp")
    tmp = mounts[targets.index("/tmp")]
    assert tmp.fstab_line() == f"{private} /tmp none rbind 0 0"
    assert mounts[targets.index("/var/tmp")].fstab_line().endswith(" bind 0 0")
    assert mounts[targets.index(private + "/work")].fstab_line() == (
        f"/tmp/work {private}/work none bind,X-mount.mkdir 0 0")


def test_good_shares_are_normalized_and_may_not_hide_each_other() -> None:
    assert check_share(ShareSpec("/srv/data/", "/data//x/")) == ShareSpec("/srv/data",
                                                                         "/data/x")
    with pytest.raises(SpecError, match="one would hide the other"):
        check_shares([ShareSpec("/srv/a", "/data"), ShareSpec("/srv/b", "/data/b")])


def test_a_missing_host_directory_is_refused_with_the_mkdir(tmp_path: Path) -> None:
    check_host_dirs([ShareSpec(str(tmp_path), "/data")], lambda p: Path(p).is_dir())
    with pytest.raises(SpecError, match=r"does not exist .*mkdir -p /nonexistent/x"):
        check_host_dirs([ShareSpec("/nonexistent/x", "/data")], lambda p: Path(p).is_dir())


def test_where_nodes_see_a_host_directory() -> None:
    shares = (ShareSpec("/srv/data", "/data"), ShareSpec("/work", "/work"))
    home = "/var/lib/vhpc/uni/home"
    assert visible_path("/srv/data/run1", shares, home) == "/data/run1"
    assert visible_path("/work", shares, home) == "/work"
    assert visible_path(home + "/cluser", shares, home) == home + "/cluser"
    assert visible_path("/tmp/work", shares, home) is None
    assert visible_path("/srv/database", shares, home) is None  # not under /srv/data


def test_a_directory_the_nodes_do_not_see_gets_a_warning_with_the_fix() -> None:
    from vhpc.spec.shares import invisible_dir_warning

    home = "/var/lib/vhpc/uni/home"
    shares = (ShareSpec("/tmp/work", "/tmp/work"), ShareSpec("/srv/data", "/data"))
    assert invisible_dir_warning("/tmp/work/run1", shares, home, "uni") is None
    assert invisible_dir_warning(home + "/cluser", shares, home, "uni") is None
    lost = invisible_dir_warning("/root/project", shares, home, "uni")
    assert lost is not None and "the nodes do not see it" in lost
    assert "couldn't chdir" in lost and "'vhpc up --share /root/project'" in lost
    moved = invisible_dir_warning("/srv/data/x", shares, home, "uni")
    assert moved is not None and "the nodes see it as /data/x" in moved
