"""CLI conventions: data on stdout, progress and diagnostics on stderr; `top` off a terminal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import BaseModel

from tests.unit.cli_fakes import FakeManager, install, make_spec, run_vhpc
from vhpc import control
from vhpc.cli.output import plain
from vhpc.cli.render import phase_text


def test_status_table_and_json_go_to_stdout(monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    install(monkeypatch, tmp_path)
    table = run_vhpc("-c", "hbt", "status")
    assert table.code == 0 and table.stderr == ""
    assert "compute1" in table.stdout and "cluster hbt ready" in table.stdout
    doc = json.loads(run_vhpc("-c", "hbt", "status", "--json").stdout)
    assert doc["cluster"] == "hbt" and len(doc["nodes"]) == 3


def test_a_ready_cluster_shows_no_boot_step_and_a_booting_one_does(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    install(monkeypatch, tmp_path, FakeManager(make_spec(), phase="booting"))
    assert "booting (creating nodes 1/2)" in run_vhpc("-c", "hbt", "status").stdout
    ready = {"phase": "ready", "progress": {"message": "starting", "done": 0, "total": 0}}
    assert phase_text(ready) == "ready"


def test_env_events_and_manager_status_are_data(monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    install(monkeypatch, tmp_path)
    home = tmp_path / "hbt" / "home"
    home.mkdir(parents=True, exist_ok=True)
    monkeypatch.chdir(home)  # nodes see the cluster home: no warning about the directory
    env = run_vhpc("-c", "hbt", "env")
    assert env.stdout.startswith(f"export SLURM_CONF={tmp_path}/hbt/") and env.stderr == ""
    monkeypatch.chdir(tmp_path)  # the nodes do not see it: a warning on stderr, with the fix
    warned = run_vhpc("-c", "hbt", "env")
    assert warned.stdout == env.stdout
    assert warned.stderr.startswith(f"# warning: {tmp_path} is not shared with cluster 'hbt'")
    assert warned.stderr.endswith(f"'vhpc up --share {tmp_path}'\n")  # one line
    events = run_vhpc("-c", "hbt", "events")
    assert "node_added: compute1 joined" in events.stdout and events.stderr == ""
    assert json.loads(run_vhpc("-c", "hbt", "events", "--json").stdout)[0]["kind"] == \
        "node_added"
    manager = run_vhpc("-c", "hbt", "manager", "status")
    assert manager.stdout == "manager of hbt: ready, up 3.0s\n"


def test_node_changes_report_on_stderr_and_data_on_stdout(monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path: Path) -> None:
    fake = install(monkeypatch, tmp_path)
    removed = run_vhpc("-c", "hbt", "node", "rm", "compute1", "--drain")
    assert (removed.code, removed.stdout) == (0, "")
    assert "removed compute1" in removed.stderr
    assert ("remove_nodes", (["compute1"], True)) in fake.calls
    added = run_vhpc("-c", "hbt", "node", "add", "--count", "2")
    assert added.stdout == "" and "added 2 nodes (compute9, compute10), idle" in added.stderr
    as_json = run_vhpc("-c", "hbt", "node", "add", "compute7", "--json")
    assert json.loads(as_json.stdout) == [{"name": "compute7"}]
    listed = run_vhpc("-c", "hbt", "node", "ls")
    assert "compute0" in listed.stdout and listed.stderr == ""
    for verb, said in (("stop", "stopped compute0"), ("start", "started compute0")):
        done = run_vhpc("-c", "hbt", "node", verb, "compute0")
        assert done.stdout == "" and said in done.stderr


def test_up_prints_its_summary_with_token_on_stdout(monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    fake = install(monkeypatch, tmp_path)
    monkeypatch.setattr(control, "up", lambda options, progress=None:
                        control.UpResult(fake.spec, "http://127.0.0.1:4242/"))
    human = run_vhpc("-c", "hbt", "up", "-n", "2")
    assert human.code == 0, human.stderr
    assert "cluster hbt is up" in human.stdout and "tok-123" in human.stdout
    assert "http://127.0.0.1:4242/" in human.stdout and human.stderr == ""
    doc = json.loads(run_vhpc("-c", "hbt", "up", "-n", "2", "--json").stdout)
    assert doc["token"] == "tok-123" and doc["dashboard"] == "http://127.0.0.1:4242/"
    assert doc["cluster"] == "hbt"


def test_token_on_stdout_and_one_line_when_it_cannot_be_read(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    install(monkeypatch, tmp_path)
    assert run_vhpc("-c", "hbt", "token").stdout == "tok-123\n"
    (tmp_path / "hbt" / "run" / "token").unlink()
    missing = run_vhpc("-c", "hbt", "token")
    assert missing.code == 2 and missing.stdout == ""
    assert missing.stderr.startswith("vhpc: cannot read the API token")
    assert missing.stderr.count("\n") == 1
    gone = run_vhpc("-c", "hbnone", "token")
    assert gone.code == 2 and "is not up" in gone.stderr


def test_top_prints_one_frame_when_stdout_is_not_a_terminal(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    install(monkeypatch, tmp_path)
    frame = run_vhpc("-c", "hbt", "top")  # no --once: must not loop off a terminal
    assert frame.code == 0 and frame.stdout.count("cluster hbt (ready)") == 1
    assert "compute1" in frame.stdout and frame.stderr == ""


def test_plain_turns_models_into_json_data() -> None:
    class Node(BaseModel):
        name: str
        cpus: list[int]

    assert plain({"nodes": [Node(name="c0", cpus=[0])]}) == {"nodes": [{"name": "c0",
                                                                        "cpus": [0]}]}
