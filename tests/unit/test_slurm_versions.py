"""Config rendered per Slurm version (issue 11, part 3): the rules of
services/slurm_versions.py, goldens for 22.05 (the existing ones: a spec without a
version is 22.05) and 24.11 (`*-24.11.*`), slurmrestd's plugins, the version in status.

tests/integration/test_slurm_versions.py runs these files with the real daemons.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from vhpc.cli.render import slurm_text
from vhpc.runtime import slurm_version
from vhpc.services import gres, slurm, slurm_cgroup, slurm_versions, slurmdbd, slurmrestd
from vhpc.services.slurm_versions import Rule, adapt, parse_release
from vhpc.spec.load import ClusterOptions, HostFacts, build_spec
from vhpc.spec.model import ClusterSpec
from vhpc.spec.paths import ClusterPaths
from vhpc.spec.sizes import MIB

GOLDEN = Path(__file__).parent / "golden"
HOST = HostFacts(online_cpus=(0, 1), mem_total=24 * 1024 * MIB)
PATHS = ClusterPaths(Path("/var/lib/vhpc/lab"))
OLD, NEW = "22.05.8", "24.11.5"


def lab(version: str, **kw: object) -> ClusterSpec:
    """The clusters of the other golden tests (test_renderers, test_accounting_config)."""
    spec = build_spec(ClusterOptions(name="lab", nodes=2, **kw), HOST)  # type: ignore[arg-type]
    return dataclasses.replace(spec, slurm_version=version)


def slurm_conf(version: str) -> str:
    return slurm.render_slurm_conf(lab(version, memory="125M", features=("gpu",)), PATHS)


def slurmdbd_conf(version: str) -> str:
    spec = lab(version, users=("alice:physics",))
    node = slurmdbd.db_node(spec)
    assert node is not None
    return slurmdbd.render_slurmdbd_conf(spec, PATHS, node)


def gres_conf(version: str) -> str:
    """test_gpus's golden cluster: typed GPUs, one untyped, one node without."""
    spec = lab(version, cpus=2, gpus="a100:2", accounting=False)
    one = spec.computes[0]
    mixed = spec.with_nodes((*spec.nodes,
                             dataclasses.replace(one, name="compute9", gpus=1, gpu_type=""),
                             dataclasses.replace(one, name="compute5", gpus=0, gpu_type="")))
    return gres.render_gres_conf(mixed.nodes, version)


@pytest.mark.parametrize(("text", "release"), [
    ("24.11.5", (24, 11)), ("slurm-wlm 22.05.8", (22, 5)), ("slurm 23.02", (23, 2)),
    ("", slurm_versions.BASELINE),
])
def test_release_of_a_version_text(text: str, release: tuple[int, int]) -> None:
    assert parse_release(text) == release


def test_a_text_without_a_version_is_refused() -> None:
    with pytest.raises(ValueError, match="not a Slurm version"):
        parse_release("unknown")


@pytest.mark.parametrize(("name", "render"), [
    ("slurm.conf", slurm_conf),
    ("slurmdbd.conf", slurmdbd_conf),
    ("gres.conf", gres_conf),
    ("cgroup.conf", lambda v: slurm_cgroup.render_cgroup_conf(1, v)),
    ("cgroup-v2.conf", lambda v: slurm_cgroup.render_cgroup_conf(2, v)),
])
def test_22_05_and_24_11_match_their_goldens(name: str, render: object) -> None:
    assert callable(render)
    assert render(OLD) == render("") == (GOLDEN / name).read_text()  # 22.05: the goldens
    stem, _, ext = name.rpartition(".")
    assert render(NEW) == (GOLDEN / f"{stem}-24.11.{ext}").read_text()


def test_24_11_drops_what_23_11_removed() -> None:
    old, new = slurm_conf(OLD), slurm_conf(NEW)
    assert "TaskPlugin=task/none" in old and "TaskPlugin" not in new
    assert set(new.splitlines()) == set(old.splitlines()) - {"TaskPlugin=task/none"}
    v1 = slurm_cgroup.render_cgroup_conf(1, NEW)
    v2 = slurm_cgroup.render_cgroup_conf(2, NEW)
    assert "CgroupAutomount" not in v1 + v2
    assert "EnableControllers=yes" in v2 and "EnableControllers" not in v1


def test_job_limits_keep_their_cgroup_plugins_on_24_11() -> None:
    spec = lab(NEW, memory="125M")
    text = slurm.render_slurm_conf(spec, PATHS, job_limits=True)
    assert "TaskPlugin=task/cgroup" in text and "ProctrackType=proctrack/cgroup" in text


def test_jobacct_none_is_dropped_only_from_23_11() -> None:
    lines = ["JobAcctGatherType=jobacct_gather/none", "JobAcctGatherType=jobacct_gather/linux"]
    assert adapt("slurm.conf", lines, "23.02.7") == lines
    assert adapt("slurm.conf", lines, "23.11.0") == ["JobAcctGatherType=jobacct_gather/linux"]


def test_rules_leave_comments_other_files_and_multi_word_lines_alone() -> None:
    rules = (Rule("x.conf", "Key", (23, 11), "NewKey", "renamed"),)
    lines = ["# Key=1", "key=2", "PartitionName=p Key=3", "Other=4"]
    assert adapt("x.conf", lines, NEW, rules) == ["# Key=1", "NewKey=2",
                                                  "PartitionName=p Key=3", "Other=4"]
    assert adapt("y.conf", lines, NEW, rules) == lines
    assert adapt("x.conf", lines, OLD, rules) == lines


@pytest.mark.parametrize(("version", "accounting", "plugins", "parsers"), [
    (OLD, True, ("openapi/v0.0.38", "openapi/dbv0.0.38"), ()),
    ("23.02.7", False, ("openapi/v0.0.39",), ()),
    ("23.11.10", True, ("openapi/slurmctld", "openapi/slurmdbd"), ("data_parser/v0.0.40",)),
    (NEW, False, ("openapi/slurmctld",), ("data_parser/v0.0.42",)),
    ("25.11.1", True, ("openapi/slurmctld", "openapi/slurmdbd"), ("data_parser/v0.0.43",)),
])
def test_rest_plugins_per_release(version: str, accounting: bool, plugins: tuple[str, ...],
                                  parsers: tuple[str, ...]) -> None:
    assert slurm_versions.rest_plugins(version, accounting) == (plugins, parsers)


def test_slurmrestd_of_24_11_loads_the_unversioned_plugins_and_one_data_parser() -> None:
    spec = lab(NEW)
    argv = slurmrestd.daemon(spec, PATHS).argv
    assert argv[argv.index("-s") + 1] == "openapi/slurmctld,openapi/slurmdbd"
    assert argv[argv.index("-d") + 1] == "data_parser/v0.0.42"
    assert slurmrestd.api_version(spec) == "v0.0.42"
    assert "-d" not in slurmrestd.daemon(lab(OLD), PATHS).argv


def test_spec_keeps_its_version_and_older_specs_read_as_22_05() -> None:
    spec = lab(NEW)
    data = spec.to_dict()
    assert data["slurm_version"] == NEW
    assert type(spec).from_dict(data).slurm_version == NEW
    del data["slurm_version"]
    assert parse_release(type(spec).from_dict(data).slurm_version) == (22, 5)


def test_slurmd_version_text() -> None:
    assert slurm_version.short_version("slurm-wlm 24.11.5\n") == "24.11.5"
    assert slurm_version.short_version("slurm 22.05.8") == "22.05.8"
    assert slurm_version.short_version("") == ""


def test_an_images_version_comes_from_its_metadata(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VHPC_STATE_ROOT", str(tmp_path))
    image = tmp_path / ".images" / "debian13"
    image.mkdir(parents=True)
    (image / "image.json").write_text(json.dumps({
        "name": "debian13", "suite": "trixie", "slurm_version": NEW, "openmpi_version": "5.0.7",
        "python_version": "3.13.5", "size": 1, "built_at": 0.0, "build_seconds": 0.0}))
    assert slurm_version.of_image("debian13") == NEW


def test_status_header_names_the_version_and_the_image() -> None:
    assert slurm_text({"slurm_version": NEW, "image": "debian13"}) == \
        " Slurm 24.11.5 (image debian13),"
    assert slurm_text({"slurm_version": OLD}) == " Slurm 22.05.8,"
    assert slurm_text({}) == ""  # an older manager's status
