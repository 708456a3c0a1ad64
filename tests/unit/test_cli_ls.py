"""`vhpc ls`: a table or JSON of the clusters here, from state files and a health probe."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.unit.cli_fakes import make_spec, run_vhpc, write_state
from vhpc.cli import cluster_list
from vhpc.cli.cluster_list import cluster_rows, format_age


def answers(dashboards: dict[str, str]) -> cluster_list.Probe:
    """A probe where only the named clusters' managers answer."""
    def probe(name: str) -> dict[str, Any] | None:
        if name not in dashboards:
            return None
        return {"cluster": name, "phase": "ready", "uptime": 5.0,
                "dashboard": dashboards[name]}
    return probe


@pytest.fixture
def three_clusters(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """hba (ready), hbb (manager dead), hbc (nothing owned any more), booted 2 h ago."""
    monkeypatch.setenv("VHPC_STATE_ROOT", str(tmp_path))
    for name, nodes, live in (("hba", 4, True), ("hbb", 2, True), ("hbc", 1, False)):
        paths = write_state(tmp_path, make_spec(name, nodes), live=live)
        os.utime(paths.munge_key, (1_000_000.0, 1_000_000.0))
    monkeypatch.setattr(cluster_list, "probe_manager",
                        answers({"hba": "http://127.0.0.1:4242/"}))
    return tmp_path


def test_rows_say_size_state_age_and_dashboard(three_clusters: Path) -> None:
    rows = cluster_rows(cluster_list.probe_manager, now=1_007_200.0)
    assert [(r.name, r.nodes, r.state, r.age, r.dashboard) for r in rows] == [
        ("hba", 4, "ready", 7200.0, "http://127.0.0.1:4242/"),
        ("hbb", 2, "manager down", 7200.0, ""),
        ("hbc", 1, "down", 7200.0, ""),
    ]


def test_ls_table_and_json_on_stdout(three_clusters: Path) -> None:
    table = run_vhpc("ls")
    assert table.code == 0 and table.stderr == ""
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["NAME", "NODES", "STATE", "AGE", "DASHBOARD"]
    assert lines[1].split()[:3] == ["hba", "4", "ready"]
    assert lines[1].split()[-1] == "http://127.0.0.1:4242/"
    assert lines[2].split()[:4] == ["hbb", "2", "manager", "down"]
    doc = json.loads(run_vhpc("ls", "--json").stdout)
    assert [(d["name"], d["state"]) for d in doc] == [
        ("hba", "ready"), ("hbb", "manager down"), ("hbc", "down")]
    assert set(doc[0]) == {"name", "nodes", "state", "age", "dashboard"}


def test_no_cluster_says_so_on_stderr_and_json_is_an_empty_list(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VHPC_STATE_ROOT", str(tmp_path / "none"))
    empty = run_vhpc("ls")
    assert (empty.code, empty.stdout) == (0, "")
    assert empty.stderr == "no clusters on this host ('vhpc up' boots one)\n"
    assert run_vhpc("ls", "--json").stdout == "[]\n"


def test_the_real_probe_reports_a_dead_manager_without_starting_one(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VHPC_STATE_ROOT", str(tmp_path))
    write_state(tmp_path, make_spec("hbd", 1))  # a ledger, but no manager socket
    assert cluster_list.probe_manager("hbd") is None
    assert [r.state for r in cluster_rows()] == ["manager down"]


@pytest.mark.parametrize(("seconds", "text"), [(None, "-"), (0.4, "0s"), (59, "59s"),
                                                (60, "1m"), (7199, "1h"), (90000, "1d")])
def test_format_age(seconds: float | None, text: str) -> None:
    assert format_age(seconds) == text
