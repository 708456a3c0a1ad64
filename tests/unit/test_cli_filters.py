"""Unknown filter values are errors with the valid values; known ones may match nothing."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from tests.unit.cli_fakes import NOW, FakeManager, install, make_spec, run_vhpc
from tests.unit.fake_runtime import FakeRuntime
from vhpc import control
from vhpc.cli.observe_cmds import LOG_SERVICES
from vhpc.cluster.cluster import Cluster
from vhpc.services import slurm
from vhpc.spec.paths import ClusterPaths


def row(node: str, service: str, message: str) -> dict[str, object]:
    """One central log row."""
    return {"id": 1, "ts": NOW, "node": node, "service": service, "level": "info",
            "message": message}


def test_an_unknown_node_is_refused_with_the_nodes(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    install(monkeypatch, tmp_path)
    result = run_vhpc("-c", "hbt", "logs", "--node", "nosuchnode")
    assert result.code == 2 and result.stdout == ""
    assert result.stderr == ("vhpc: --node 'nosuchnode' matches nothing: use one of slurm, "
                             "dns, db, compute0, compute1\n")


def test_an_unknown_service_is_refused_with_the_services(monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path) -> None:
    install(monkeypatch, tmp_path)
    result = run_vhpc("-c", "hbt", "logs", "--service", "nosuch", "--json")
    assert result.code == 2 and result.stdout == ""
    assert result.stderr == ("vhpc: --service 'nosuch' matches nothing: use one of "
                             f"{', '.join(LOG_SERVICES)}\n")


def test_known_values_without_lines_print_nothing_and_succeed(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    install(monkeypatch, tmp_path)
    quiet = run_vhpc("-c", "hbt", "logs", "--node", "compute1", "--service", "slurmd")
    assert (quiet.code, quiet.stdout, quiet.stderr) == (0, "", "")
    assert json.loads(run_vhpc("-c", "hbt", "logs", "--node", "compute1",
                               "--json").stdout) == {"logs": []}


def test_lines_of_a_removed_node_are_still_shown(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    fake = FakeManager(make_spec(), log_rows=[row("compute7", "slurmd", "bye")])
    install(monkeypatch, tmp_path, fake)
    shown = run_vhpc("-c", "hbt", "logs", "--node", "compute7")
    assert shown.code == 0 and "compute7   slurmd    bye" in shown.stdout


def test_metrics_of_an_unknown_node_are_refused(monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    install(monkeypatch, tmp_path)
    bad = run_vhpc("-c", "hbt", "metrics", "--node", "compute9")
    assert bad.code == 2 and "--node 'compute9' matches nothing" in bad.stderr
    assert "_total" in bad.stderr
    good = run_vhpc("-c", "hbt", "metrics", "--node", "compute1", "--json")
    assert json.loads(good.stdout)["series"][0]["node"] == "compute1"


def test_log_services_name_every_daemon_the_cluster_runs(tmp_path: Path) -> None:
    spec = make_spec()
    cluster = Cluster(spec, ClusterPaths(tmp_path / spec.name), FakeRuntime())
    daemons = cluster.service_daemons() + [slurm.slurmd(spec, cluster.paths, n)
                                           for n in spec.computes]
    assert {d.name for d in daemons} | {"slurmctld", "job", "vhpc"} == set(LOG_SERVICES)


def test_boot_steps_are_logged_once_each(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[tuple[str, int, int]] = []
    report = control._logging_progress("hbt", lambda *step: seen.append(step))
    with caplog.at_level(logging.INFO, logger="vhpc.control"):
        for done in range(3):
            report("creating nodes", done, 2)
        report("waiting for nodes to be idle", 0, 2)
    assert [r.getMessage() for r in caplog.records] == [
        "cluster hbt: creating nodes (2)", "cluster hbt: waiting for nodes to be idle (2)"]
    assert len(seen) == 4
