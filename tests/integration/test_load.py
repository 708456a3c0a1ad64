"""`vhpc load` and `vhpc chaos run` against a real cluster (issue 15, items 2 and 3).

The job mix is submitted with the real sbatch as the cluster's users; its report must
count every job; `down` afterwards leaves nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.helpers import leftovers, vhpc

pytestmark = pytest.mark.privileged

NAME = "hoload"


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """Two compute nodes and two users besides cluser; removed with nothing left."""
    vhpc("-c", NAME, "clean", "--force", check=False)
    vhpc("-c", NAME, "up", "-n", "2", "--memory", "128M", "--users",
         "alice:physics,bob:chem", timeout=600)
    try:
        yield NAME
    finally:
        vhpc("-c", NAME, "down", check=False, timeout=300)
        assert leftovers(NAME) == []


def test_load_count_50_completes_and_counts_50_jobs(cluster: str) -> None:
    result = vhpc("-c", cluster, "load", "--count", "50", "--seed", "1", "--mean-runtime",
                  "0.2", "--fail-rate", "0.1", "--json", timeout=600)
    report = json.loads(result.stdout)
    total = report["total"]
    assert report["requested"] == 50 and report["refused"] == 0, report
    assert total["submitted"] == 50, report
    assert total["completed"] + total["failed"] == 50, report
    assert total["failed"] >= 1  # the seed's mix has failing jobs, Slurm saw them fail
    assert total["wait_p50"] is not None and total["wait_p99"] >= total["wait_p50"]
    # Slurm books whole seconds: most 0.2 s jobs start and end in the same second, so
    # this mix may book nothing (CI saw 0.0); the test below books for sure
    assert 0 <= total["utilisation"] <= 1
    assert set(report["partitions"]) == {"vhpc"}
    assert "submitted 50" not in result.stdout  # the live view is for terminals only


def test_jobs_of_two_seconds_book_their_cpu_seconds(cluster: str) -> None:
    result = vhpc("-c", cluster, "load", "--count", "3", "--seed", "4", "--mean-runtime",
                  "2", "--distribution", "fixed", "--fail-rate", "0", "--json", timeout=300)
    total = json.loads(result.stdout)["total"]
    assert total["completed"] == 3, total
    assert total["cpu_seconds"] >= 3 * 2, total  # each ran 2 s or more on 1 CPU or more
    assert 0 < total["utilisation"] <= 1, total


def test_load_refuses_bad_options_in_one_line(cluster: str) -> None:
    for args, words in ((["--count", "0"], "--count must be at least 1"),
                        (["--count", "5", "--fail-rate", "2"], "--fail-rate"),
                        ([], "--count N or --duration")):
        result = vhpc("-c", cluster, "load", *args, check=False)
        assert result.returncode == 2, result
        assert words in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_the_report_is_printed_as_a_table(cluster: str, tmp_path: Path) -> None:
    result = vhpc("-c", cluster, "load", "--count", "4", "--seed", "2", "--mean-runtime",
                  "0.1", timeout=300)
    assert "load seed 2: 4 jobs planned, 4 submitted" in result.stdout, result.stdout
    assert "WAIT P50" in result.stdout and "(all)" in result.stdout


SCENARIO = """
name = "it"
seed = 3

[[load]]
count = 6
mean_runtime = 0.2

[[fault]]
at = 1
kind = "partition"
nodes = ["compute1"]
from = ["controller"]
duration = 3
"""


def test_a_chaos_scenario_runs_its_load_and_clears_its_fault(cluster: str,
                                                             tmp_path: Path) -> None:
    path = tmp_path / "scenario.toml"
    path.write_text(SCENARIO)
    result = vhpc("-c", cluster, "chaos", "run", str(path), "--json", timeout=600)
    report = json.loads(result.stdout)
    assert [load["total"]["submitted"] for load in report["loads"]] == [6], report
    (fault,) = report["faults"]
    assert fault["ids"] and fault["error"] == "", fault
    assert fault["applied_at"] is not None and fault["cleared_at"] >= fault["applied_at"]
    assert report["left_active"] == [] and not report["interrupted"]
    assert "fault #1 applied" in result.stderr and "fault #1 cleared" in result.stderr
    active = json.loads(vhpc("-c", cluster, "fault", "ls", "--json").stdout)
    assert not (active["faults"] if isinstance(active, dict) else active)


def test_a_bad_scenario_runs_nothing(cluster: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[[load]]\ncount = 0\n[[fault]]\nat = 1\nkind = "freeze"\n'
                    'nodes = ["compute9"]\n')
    result = vhpc("-c", cluster, "chaos", "run", str(path), check=False)
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "count must be at least 1" in lines[0], lines
    path.write_text('[[fault]]\nat = 1\nkind = "freeze"\nnodes = ["compute9"]\n')
    result = vhpc("-c", cluster, "chaos", "run", str(path), check=False)
    assert result.returncode == 2 and "no node 'compute9'" in result.stderr, result
