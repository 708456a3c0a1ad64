"""The pytest plugin without root: registration, skips, options and the pool (fake boots).

Each project runs in a pytest subprocess (runpytest_subprocess), so what its conftest
patches (geteuid, the boot) cannot leak into this test run.
"""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

# A conftest that replaces the real boot by a recorder: the pool logic runs for real.
FAKE_BOOT = """
import json, os
from vhpc import pytest_plugin

LOG = os.path.join(os.path.dirname(__file__), "boots.jsonl")

class FakeCluster:
    owned = True
    def __init__(self, name, options):
        self.name, self.options = name, options
    def stop(self):
        with open(LOG, "a") as f:
            f.write(json.dumps({"stop": self.name}) + "\\n")

def fake_start(self, name, options):
    with open(LOG, "a") as f:
        f.write(json.dumps({"boot": name, "options": options}) + "\\n")
    return FakeCluster(name, options)

# the host checks and the real boot are replaced; the pool and its naming run for real
pytest_plugin.ClusterPool._check_host = lambda self: None
pytest_plugin.ClusterPool._start = fake_start
"""


def test_plugin_registers_marker_ini_options_and_flag(pytester: pytest.Pytester) -> None:
    markers = pytester.runpytest_subprocess("--markers")
    markers.stdout.fnmatch_lines(["@pytest.mark.vhpc(nodes=2, memory='1G'*"])
    help_ = pytester.runpytest_subprocess("--help")
    help_.stdout.fnmatch_lines(["*--vhpc-attach=NAME*", "*vhpc_nodes*", "*vhpc_spec*"])


def test_unused_fixture_boots_and_imports_nothing(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import sys
        def test_plain():
            assert "vhpc.python_api" not in sys.modules
            assert "vhpc.control" not in sys.modules
    """)
    pytester.runpytest_subprocess().assert_outcomes(passed=1)


def test_not_root_skips_with_a_reason(pytester: pytest.Pytester) -> None:
    pytester.makeconftest("import os\nos.geteuid = lambda: 1000\n")
    pytester.makepyfile("""
        def test_one(vhpc_cluster):
            raise AssertionError("must not run")
        def test_two(vhpc_cluster):
            raise AssertionError("must not run")
    """)
    result = pytester.runpytest_subprocess("-rs")
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(["*vhpc cannot run clusters here*needs root*"])


def test_missing_packages_skip_with_the_package_name(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        "import os\nos.geteuid = lambda: 0\n"
        "from vhpc.runtime import facts\n"
        "facts.REQUIRED_BINARIES['vhpc-no-such-binary'] = 'vhpc-no-such-package'\n")
    pytester.makepyfile("def test_one(vhpc_cluster):\n    raise AssertionError('no')\n")
    result = pytester.runpytest_subprocess("-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*missing Debian packages*vhpc-no-such-package*"])


def test_options_from_ini_spec_and_markers_and_one_cluster_at_a_time(
        pytester: pytest.Pytester) -> None:
    pytester.makeconftest(FAKE_BOOT)
    pytester.makeini("[pytest]\nvhpc_memory = 200M\nvhpc_spec = cluster.toml\n"
                     "vhpc_name = t6fake\n")
    pytester.makefile(".toml", cluster="[cluster]\nnodes = 3\npartition = 'debug'\n")
    pytester.makepyfile("""
        import pytest

        def test_a(vhpc_cluster):
            assert vhpc_cluster.options == {"nodes": 3, "memory": "200M", "partition": "debug"}

        def test_b_shares(vhpc_cluster, vhpc_clusters):
            assert vhpc_cluster.name == "t6fake"
            assert vhpc_clusters.get() is vhpc_cluster

        @pytest.mark.vhpc(nodes=1, features=["gpu"])
        def test_c_marker(vhpc_cluster):
            assert vhpc_cluster.name == "t6fake-2"
            assert vhpc_cluster.options["nodes"] == 1
            assert vhpc_cluster.options["features"] == ("gpu",)

        @pytest.mark.vhpc(colour="red")
        def test_d_bad_marker(vhpc_cluster):
            pass
    """)
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(["*unknown options colour*"])
    log = (pytester.path / "boots.jsonl").read_text().splitlines()
    assert [line.split('"')[1:4:2] for line in log] == [
        ["boot", "t6fake"], ["stop", "t6fake"], ["boot", "t6fake-2"], ["stop", "t6fake-2"]]


def test_a_failed_boot_is_not_retried_for_every_test(pytester: pytest.Pytester) -> None:
    pytester.makeconftest("""
        from vhpc import pytest_plugin
        from vhpc.errors import BootError
        calls = []
        def failing_boot(self, options):
            calls.append(options)
            if len(calls) > 1:
                raise RuntimeError("BOOTED-TWICE")
            raise BootError("slurmctld did not start")
        pytest_plugin.ClusterPool._boot = failing_boot
    """)
    pytester.makepyfile("def test_one(vhpc_cluster): pass\ndef test_two(vhpc_cluster): pass\n")
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*BootError: slurmctld did not start*"])
    assert "RuntimeError: BOOTED-TWICE" not in result.stdout.str()
