"""The vhpc_cluster fixture in a real test project (pytester): it boots real clusters,
passes and fails tests as it should, and leaves nothing behind."""

from __future__ import annotations

import pytest

from tests.integration.helpers import leftovers

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.privileged

PROJECT_TESTS = '''
import pytest

JOB = "#!/bin/bash\\n#SBATCH -N2\\nsrun hostname\\n"

def test_job_script_passes(vhpc_cluster):
    job = vhpc_cluster.sbatch(JOB)
    result = vhpc_cluster.wait(job, timeout=60)
    assert result.exit_code == 0
    assert sorted(result.stdout.split()) == ["compute0", "compute1"]

def test_broken_job_script_fails(vhpc_cluster):
    job = vhpc_cluster.sbatch("#!/bin/bash\\nexit 4\\n")
    assert vhpc_cluster.wait(job, timeout=60).exit_code == 0

def test_same_cluster_is_shared(vhpc_cluster, vhpc_clusters):
    assert vhpc_cluster.name == "t6plug"
    assert vhpc_clusters.get() is vhpc_cluster

@pytest.mark.vhpc(nodes=1, memory="100M")
def test_marker_gets_its_own_cluster(vhpc_cluster):
    assert vhpc_cluster.name == "t6plug-2"
    assert vhpc_cluster.nodes == ["compute0"]
    assert vhpc_cluster.run("srun -N1 hostname", user="cluser").stdout == "compute0\\n"
'''


def test_fixture_passes_and_fails_as_it_should(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nvhpc_name = t6plug\nvhpc_nodes = 2\n")
    pytester.makepyfile(test_jobs=PROJECT_TESTS)
    try:
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=300)
        result.assert_outcomes(passed=3, failed=1)
        result.stdout.fnmatch_lines(["*test_broken_job_script_fails*",
                                     "*assert 4 == 0*"])
    finally:
        for name in ("t6plug", "t6plug-2"):
            assert leftovers(name) == [], name


def test_attach_option_uses_a_running_cluster(pytester: pytest.Pytester) -> None:
    from vhpc import Cluster, control

    pytester.makepyfile(test_attached='''
def test_attached(vhpc_cluster):
    assert vhpc_cluster.name == "t6plugatt"
    assert not vhpc_cluster.owned
''')
    with Cluster(name="t6plugatt", nodes=2):
        result = pytester.runpytest_subprocess("--vhpc-attach", "t6plugatt", timeout=120)
        result.assert_outcomes(passed=1)
        assert control.is_up("t6plugatt"), "an attached cluster must outlive the session"
    assert leftovers("t6plugatt") == []
