"""`vhpc spec check/schema` and `up -f`: what the command line does with a cluster file."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest

from tests.unit.cli_fakes import run_vhpc
from vhpc import control
from vhpc.cli import site_cmds
from vhpc.spec.load import ClusterOptions
from vhpc.spec.model import ShareSpec

EXAMPLES = Path(__file__).parents[2] / "examples" / "sites"


def test_spec_schema_prints_json_schema() -> None:
    result = run_vhpc("spec", "schema")
    assert result.code == 0 and result.stderr == ""
    schema = json.loads(result.stdout)
    assert schema["title"] == "vhpc cluster file"
    assert "NodesTable" in schema["$defs"]


def test_spec_check_prints_the_resolved_nodes_and_partitions(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VHPC_STATE_ROOT", str(tmp_path))
    result = run_vhpc("spec", "check", str(EXAMPLES / "gpu-lab.toml"))
    assert result.code == 0, result.stderr
    assert "ok: cluster 'gpulab', 6 compute nodes" in result.stdout
    assert "ampere0     ampere        2       2G  a100:4  r2" in result.stdout
    assert "interactive no       01:00:00       20  cpu0,cpu1,volta0,volta1" in result.stdout
    doc = json.loads(run_vhpc("spec", "check", "--json",
                              str(EXAMPLES / "gpu-lab.toml")).stdout)
    assert [p["name"] for p in doc["partitions"]] == ["cpu", "gpu", "interactive"]
    assert not (tmp_path / "gpulab").exists()  # nothing made


def test_spec_check_of_a_bad_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[nodes]]\ngroup = "cpu"\ncount = -1\n')
    result = run_vhpc("spec", "check", str(bad))
    assert result.code == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"vhpc: {bad}: line 3 [[nodes]] #1 count: ")


def test_a_share_whose_host_directory_is_missing_is_refused_before_anything(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VHPC_STATE_ROOT", str(tmp_path))
    with pytest.raises(Exception, match="does not exist"):
        control.plan(ClusterOptions(name="hgu", nodes=1,
                                    shares=(ShareSpec(str(tmp_path / "nope"), "/data"),)))


def _up_options(args: list[str], cluster: list[str] | None = None) -> ClusterOptions:
    """What `vhpc [cluster] up ARGS` would boot (the up command's own option parsing)."""
    from vhpc.cli.main import cli

    seen: list[ClusterOptions] = []

    def fake_up(options: ClusterOptions, progress: object = None) -> object:
        seen.append(options)
        raise click.exceptions.Exit(0)

    mp = pytest.MonkeyPatch()
    mp.setattr(control, "up", fake_up)
    try:
        cli.main([*(cluster or []), "up", *args], prog_name="vhpc", standalone_mode=False)
    except click.exceptions.Exit:
        pass
    finally:
        mp.undo()
    return seen[0]


def test_up_flags_override_the_file_and_shares_add_up(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    site = tmp_path / "s.toml"
    site.write_text(f'[cluster]\nname = "filename"\nmemory = "200M"\ncpus = 1\n'
                    f'[[shares]]\nhost = "{tmp_path}"\npath = "/data"\n')
    from_file = _up_options(["-f", str(site)])
    assert (from_file.name, from_file.memory, from_file.nodes) == ("filename", "200M", 4)
    flags = _up_options(["-f", str(site), "--memory", "300M", "-n", "2",
                         "--share", f"{tmp_path / 'd'}"], ["-c", "flagname"])
    assert (flags.name, flags.memory, flags.nodes, flags.cpus) == ("flagname", "300M", 2, 1)
    assert flags.shares == (ShareSpec(str(tmp_path), "/data"),
                            ShareSpec(str(tmp_path / "d"), str(tmp_path / "d")))
    plain = _up_options([])
    assert plain.memory is None and plain.shares == ()  # default memory: 1G capped


def test_site_cmds_knows_every_up_field() -> None:
    fields = set(ClusterOptions.__dataclass_fields__)
    assert set(site_cmds.UP_FIELDS) <= fields


def test_status_table_shows_group_partitions_and_features_only_when_some_node_has_them(
        ) -> None:
    from vhpc.cli.render import site_cells, site_columns

    site = [{"group": "gpu", "partitions": ["gpu", "debug"], "features": ["gpu", "nvlink"]},
            {"group": "", "partitions": [], "features": []}]
    columns = site_columns(site)
    assert columns == ("GROUP", "PARTITIONS", "FEATURES")
    assert site_cells(site[0], columns) == ["gpu", "gpu,debug", "gpu,nvlink"]
    assert site_cells(site[1], columns) == ["-", "-", "-"]
    plain = [{"group": "", "partitions": ["vhpc"], "features": []}]
    assert site_columns(plain) == ("PARTITIONS",)


def test_the_pytest_plugin_reads_a_cluster_file_with_the_same_parser(tmp_path: Path) -> None:
    from vhpc.pytest_plugin import read_spec_file

    options = read_spec_file(EXAMPLES / "university.toml")
    assert "name" not in options  # the plugin names its clusters
    assert [g.name for g in options["groups"]] == ["cpu", "bigmem", "gpu"]
    assert [p.name for p in options["partitions"]] == ["cpu", "gpu", "debug"]
    ClusterOptions(name="hgplug", **options)  # what the plugin boots
    bad = tmp_path / "bad.toml"
    bad.write_text("[cluster]\nnodez = 2\n")
    with pytest.raises(pytest.UsageError, match=r"line 2 \[cluster\] nodez: unknown key"):
        read_spec_file(bad)
