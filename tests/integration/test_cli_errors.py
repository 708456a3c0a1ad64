"""Bad input gets one line with the fix, a non-zero exit and nothing half-created."""

from __future__ import annotations

import pytest

from tests.integration.helpers import STATE_ROOT, leftovers, vhpc

pytestmark = pytest.mark.privileged

NAME = "it2err"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["up", "-n", "0"], "at least one compute node"),
        (["up", "--memory", "8M"], "below the 16M slurmd needs"),
        (["up", "--memory", "lots"], "invalid memory size"),
        (["up", "--cpuset", "0,97"], "CPU 97 does not exist on this host"),
        (["up", "--cpus", "64"], "more than the host's"),
        (["up", "--subnet", "10.202.0.0/24", "-n", "250"], "use --subnet 10.202.0.0/23"),
        (["up", "--subnet", "10.202.0.0/28", "-n", "8"], "holds at most"),
        (["up", "--subnet", "banana"], "invalid subnet"),
        (["up", "-n", "4", "--memory", "1T"], "--overcommit"),
        (["exec", "compute0", "--", "true"], "is not up"),
    ],
)
def test_bad_input_one_line_nonzero_nothing_created(args: list[str], expected: str) -> None:
    result = vhpc("-c", NAME, *args, check=False)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("vhpc: ") and expected in lines[0], lines[0]
    assert "Traceback" not in result.stderr
    assert not (STATE_ROOT / NAME).exists()
    assert leftovers(NAME) == []


def test_invalid_cluster_name() -> None:
    result = vhpc("-c", "Bad_Name", "up", check=False)
    assert result.returncode == 2
    assert "invalid cluster name" in result.stderr


def test_not_root_is_refused_with_the_fix() -> None:
    import os
    import subprocess
    import sys

    result = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c",
         "import sys; sys.path[:0] = " + repr(sys.path) + "; from vhpc.cli.main import main;"
         " sys.argv = ['vhpc', '-c', 'it2nr', 'up', '-n', '1']; main()"],
        capture_output=True, text=True, env=dict(os.environ, HOME="/tmp"),
    )
    assert result.returncode == 2, result.stderr
    assert "needs root" in result.stderr and "Traceback" not in result.stderr


def test_second_up_of_a_running_cluster_is_refused() -> None:
    vhpc("-c", NAME, "clean", check=False)
    vhpc("-c", NAME, "up", "-n", "1")
    try:
        again = vhpc("-c", NAME, "up", "-n", "1", check=False)
        assert again.returncode == 2
        assert "already up" in again.stderr
    finally:
        vhpc("-c", NAME, "down")
    assert leftovers(NAME) == []
