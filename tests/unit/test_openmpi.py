"""Open MPI's yield setting: the TaskProlog every Slurm task runs and the nodes' environment."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from vhpc.services import openmpi
from vhpc.spec.paths import ClusterPaths


def run_prolog(tmp_path: Path, env: dict[str, str]) -> str:
    script = tmp_path / "prolog"
    script.write_text(openmpi.render_task_prolog())
    script.chmod(0o755)
    out = subprocess.run([str(script)], env={"PATH": "/usr/bin:/bin", **env},
                         capture_output=True, text=True, check=True)
    return out.stdout


def test_the_task_prolog_exports_yield_unless_the_job_set_it(tmp_path: Path) -> None:
    assert run_prolog(tmp_path, {}) == "export OMPI_MCA_mpi_yield_when_idle=1\n"
    assert run_prolog(tmp_path, {"OMPI_MCA_mpi_yield_when_idle": "0"}) == ""
    assert run_prolog(tmp_path, {"OMPI_MCA_mpi_yield_when_idle": ""}) == ""  # set, empty


def test_prolog_values_are_plain_words() -> None:
    text = openmpi.render_task_prolog({"A_B": "x1", "C": "y"})
    assert text.splitlines()[-3:] == [
        '[ -n "${A_B+set}" ] || echo "export A_B=x1"',
        '[ -n "${C+set}" ] || echo "export C=y"', "exit 0"]
    for bad in ("two words", "", "$(id)", "a'b"):
        with pytest.raises(ValueError, match="plain word"):
            openmpi.render_task_prolog({"X": bad})


def test_slurm_conf_names_the_prolog_in_the_clusters_slurm_dir() -> None:
    paths = ClusterPaths.of("lab")
    assert openmpi.slurm_conf_lines(paths) == [
        f"TaskProlog={paths.slurm_etc / 'vhpc-task-prolog'}"]


def test_commands_in_nodes_get_the_yield_setting_too() -> None:
    from tests.unit.cli_fakes import make_spec
    from vhpc.cluster.node import node_target

    spec = make_spec()
    target = node_target(spec, ClusterPaths.of(spec.name), "compute0", [])
    assert target.env["OMPI_MCA_mpi_yield_when_idle"] == "1"
