"""Open MPI's yield setting: the cluster's system-wide MCA parameter file every node gets,
and the environment of commands run in nodes."""

from __future__ import annotations

from vhpc.services import openmpi
from vhpc.spec.paths import ClusterPaths

DEBIAN = """# comment kept
btl_base_warn_component_unused=0
mpi_yield_when_idle = 0
pml = ^ucx
"""


def test_the_parameter_file_keeps_the_roots_own_settings_and_sets_yield() -> None:
    text = openmpi.render_mca_params(DEBIAN)
    assert text.splitlines() == [
        "# comment kept", "btl_base_warn_component_unused=0", "pml = ^ucx", "",
        "# added by vhpc (services/openmpi.py): ranks yield shared CPUs",
        "mpi_yield_when_idle = 1"]


def test_a_root_without_a_file_gets_only_vhpcs_lines() -> None:
    assert openmpi.render_mca_params("", {"a": "1", "b": "x"}).splitlines() == [
        "# added by vhpc (services/openmpi.py): ranks yield shared CPUs", "a = 1", "b = x"]


def test_the_file_lives_with_the_clusters_files() -> None:
    paths = ClusterPaths.of("lab")
    assert openmpi.mca_params_file(paths) == paths.etc / "openmpi-mca-params.conf"
    assert openmpi.MCA_PARAMS_TARGET == "/etc/openmpi/openmpi-mca-params.conf"


def test_commands_in_nodes_get_the_yield_setting_too() -> None:
    from tests.unit.cli_fakes import make_spec
    from vhpc.cluster.node import node_target

    spec = make_spec()
    target = node_target(spec, ClusterPaths.of(spec.name), "compute0", [])
    assert target.env["OMPI_MCA_mpi_yield_when_idle"] == "1"
