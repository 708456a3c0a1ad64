"""Chaos scenario files (workloads/chaos.py): what a good one reads as, and every problem of
a bad one reported one line each."""

from __future__ import annotations

from pathlib import Path

import pytest

from vhpc.cluster.faults import FaultKind
from vhpc.workloads.chaos import ScenarioError, parse_scenario, read_scenario

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "chaos"

GOOD = """
name = "bad day"
seed = 4

[[load]]
rate = 2
duration = 120

[[load]]
at = 60
count = 10
seed = 9
fail_rate = 0.5

[[fault]]
at = 30
kind = "partition"
nodes = ["compute2"]
from = ["controller"]
duration = 60

[[fault]]
at = 45
kind = "loss"
nodes = "compute1"
percent = 50

[[fault]]
at = 90
kind = "kill"
daemon = "slurmd@compute3"
"""


def test_a_good_scenario() -> None:
    scenario = parse_scenario(GOOD)
    assert scenario.name == "bad day"
    first, second = scenario.loads
    assert (first.at, first.options.rate, first.options.duration, first.options.seed) == \
        (0.0, 2, 120, 4)
    assert (second.at, second.options.count, second.options.seed) == (60.0, 10, 9)
    part, loss, kill = scenario.faults
    assert (part.kind, part.nodes, part.peers, part.at, part.duration) == \
        (FaultKind.PARTITION, ("compute2",), ("controller",), 30.0, 60.0)
    assert (loss.nodes, loss.percent, loss.duration) == (("compute1",), 50, None)
    assert (kill.kind, kill.daemon) == (FaultKind.KILL, "slurmd@compute3")
    assert scenario.length == 90.0
    assert part.label() == "partition compute2 from controller"


def test_the_examples_are_valid() -> None:
    files = sorted(EXAMPLES.glob("*.toml"))
    assert files
    for path in files:
        assert read_scenario(path).faults


@pytest.mark.parametrize(("text", "words"), [
    ("[[load]]\ncount = 5\nrte = 2\n", "[[load]] #1: unknown key 'rte'"),
    ("[[load]]\nrate = 2\n", "[[load]] #1: say how much load: count N or duration"),
    ("[[load]]\ncount = 0\n", "count must be at least 1"),
    ("[[load]]\ncount = 5\nfail_rate = 2\n", "fail_rate must be a fraction"),
    ("[[load]]\ncount = \"many\"\n", "count must be an integer"),
    ("[[load]]\ncount = 5\nat = -1\n", "at must be seconds 0 or more"),
    ("[[fault]]\nat = 1\nkind = \"explode\"\nnodes = [\"c\"]\n", "kind must be one of"),
    ("[[fault]]\nkind = \"freeze\"\nnodes = [\"c\"]\n", "say when: at = SECONDS"),
    ("[[fault]]\nat = 1\nkind = \"freeze\"\n", "needs nodes"),
    ("[[fault]]\nat = 1\nkind = \"loss\"\nnodes = [\"c\"]\n", "needs percent"),
    ("[[fault]]\nat = 1\nkind = \"loss\"\nnodes = [\"c\"]\npercent = 150\n",
     "percent must be above 0 and at most 100"),
    ("[[fault]]\nat = 1\nkind = \"rate\"\nnodes = [\"c\"]\nrate = \"fast\"\n",
     "is not a rate"),
    ("[[fault]]\nat = 1\nkind = \"delay\"\nnodes = [\"c\"]\ndelay_ms = 0\n",
     "delay_ms must be whole milliseconds"),
    ("[[fault]]\nat = 1\nkind = \"freeze\"\nnodes = [\"c\"]\npercent = 5\n",
     "percent does not apply to a freeze fault"),
    ("[[fault]]\nat = 1\nkind = \"kill\"\ndaemon = \"munged\"\nduration = 5\n",
     "a kill is done at once"),
    ("[[fault]]\nat = 1\nkind = \"freeze\"\nnodes = [\"c\"]\nduration = 0\n",
     "duration must be seconds above 0"),
    ("[[fault]]\nat = 1\nkind = \"freeze\"\nnodes = [1, 2]\n", "must be node names"),
    ("loads = 3\n", "unknown key 'loads'"),
    ("seed = \"x\"\n[[load]]\ncount = 1\n", "seed must be an integer"),
    ("[load]\ncount = 1\n", "write [[load]] sections"),
    ("name = \"empty\"\n", "nothing to run"),
    ("[[load]\n", "not valid TOML"),
])
def test_a_bad_scenario_says_what_is_wrong(text: str, words: str) -> None:
    with pytest.raises(ScenarioError) as err:
        parse_scenario(text, "bad.toml")
    assert words in str(err.value)
    assert all(line.startswith("bad.toml: ") for line in str(err.value).splitlines())


def test_every_problem_is_reported_at_once_one_line_each() -> None:
    text = ("oops = 1\n[[load]]\ncount = 0\n"
            "[[fault]]\nat = 1\nkind = \"loss\"\nnodes = [\"c\"]\npercent = 0\nnode = \"x\"\n")
    with pytest.raises(ScenarioError) as err:
        parse_scenario(text, "s.toml")
    assert len(err.value.problems) == 4, err.value.problems
    assert len(str(err.value).splitlines()) == 4


def test_an_unreadable_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read it"):
        read_scenario(tmp_path / "missing.toml")
