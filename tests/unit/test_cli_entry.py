"""The `vhpc` script's early manager start for `up` (cli/entry.py, server/launch.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from vhpc.cli.entry import command_of, up_cluster_name
from vhpc.server import launch


@pytest.mark.parametrize(("args", "env", "name"), [
    (["up", "-n", "16"], {}, "vhpc"),
    (["-c", "bench", "up"], {}, "bench"),
    (["--cluster", "bench", "--debug", "up", "-n", "1"], {}, "bench"),
    (["--cluster=b2", "up"], {}, "b2"),
    (["-cb3", "up"], {}, "b3"),
    (["up"], {"VHPC_CLUSTER": "fromenv"}, "fromenv"),
    (["-c", "x", "up"], {"VHPC_CLUSTER": "fromenv"}, "x"),
    (["down"], {}, None),
    (["-c", "bench", "status"], {}, None),
    (["--help", "up"], {}, None),
    (["-c"], {}, None),
    ([], {}, None),
    (["-c", "", "up"], {}, None),
])
def test_only_an_up_starts_a_manager_early(args: list[str], env: dict[str, str],
                                            name: str | None) -> None:
    assert up_cluster_name(args, env) == name


def test_the_command_and_its_cluster_are_found_after_the_global_options() -> None:
    assert command_of(["-c", "big", "--debug", "down"], {}) == ("down", "big")
    assert command_of(["down", "-c", "x"], {}) == ("down", "vhpc")  # an option of down's
    assert command_of(["--version"], {}) is None


def _sleeper() -> subprocess.Popen[str]:
    """A stand-in for a boot manager: it exits at the end of its input."""
    return subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                            stdin=subprocess.PIPE, text=True)


def test_the_early_manager_is_taken_once_for_its_own_cluster(
        monkeypatch: pytest.MonkeyPatch) -> None:
    proc = _sleeper()
    monkeypatch.setattr(launch, "_early", ("c1", proc))
    assert launch.take_early("c1") is proc
    assert launch.take_early("c1") is None
    assert proc.stdin is not None
    proc.stdin.close()
    assert proc.wait(timeout=10) == 0


def test_an_early_manager_of_another_name_is_told_to_exit(
        monkeypatch: pytest.MonkeyPatch) -> None:
    proc = _sleeper()
    monkeypatch.setattr(launch, "_early", ("guessed", proc))
    assert launch.take_early("parsed") is None
    assert proc.wait(timeout=10) == 0  # its input ended: it exits, having made nothing
