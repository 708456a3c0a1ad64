"""A fake manager client and a runner for CLI tests: vhpc's own client layer, faked.

`FakeManager` answers what `vhpc.client.ManagerClient` answers (the same method names and
documents); `install` points `vhpc.control`'s lookups at it and at a spec, and `run_vhpc`
runs the real click command through the real error mapping (`run_cli`), returning exit
code, stdout and stderr separately.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from vhpc import control
from vhpc.cli.errors import run_cli
from vhpc.cli.main import cli
from vhpc.spec.load import ClusterOptions, HostFacts, build_spec
from vhpc.spec.model import ClusterSpec
from vhpc.spec.paths import ClusterPaths
from vhpc.spec.sizes import MIB

HOST = HostFacts(online_cpus=(0, 1), mem_total=24 * 1024 * MIB)
NOW = 1_800_000_000.0


def make_spec(name: str = "hbt", nodes: int = 2) -> ClusterSpec:
    """A spec as `vhpc up -n NODES` would make it on a 2-CPU host."""
    return build_spec(ClusterOptions(name=name, nodes=nodes), HOST)


def node_status(name: str, role: str = "compute") -> dict[str, Any]:
    """One node of the status document."""
    return {"name": name, "role": role, "ip": "10.201.0.10", "cpuset": "0",
            "memory_limit": 125 * MIB, "memory_usage": 2 * MIB, "oom_kills": 0,
            "slurm_state": "idle", "pids": [12], "cpu_percent": None,
            "services": [{"name": "slurmd", "state": "RUNNING", "pid": 12, "restarts": 0}]}


@dataclass
class FakeManager:
    """Answers like a manager of a ready 2-node cluster; records what was asked."""

    spec: ClusterSpec
    phase: str = "ready"
    log_rows: list[dict[str, Any]] = field(default_factory=list)
    calls: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)

    def ping(self) -> dict[str, Any]:
        return {"cluster": self.spec.name, "phase": self.phase, "uptime": 3.0}

    def status(self) -> dict[str, Any]:
        nodes = [node_status("slurm", "controller")] + [node_status(n.name)
                                                         for n in self.spec.computes]
        return {"cluster": self.spec.name, "phase": self.phase,
                "progress": {"message": "creating nodes", "done": 1, "total": 2},
                "error": "", "subnet": str(self.spec.subnet), "cgroup_version": 1,
                "dashboard": "http://127.0.0.1:4242/", "uptime": 3.0,
                "nodes": nodes if self.phase == "ready" else [], "jobs": []}

    def events(self, since: float = 0.0) -> list[dict[str, Any]]:
        return [{"id": 1, "ts": NOW, "kind": "node_added", "node": "compute1",
                 "level": "info", "message": "compute1 joined"}]

    def metrics(self, metric: str = "memory", since: float = 600.0,
                node: str | None = None) -> list[dict[str, Any]]:
        names = [node] if node else [n.name for n in self.spec.nodes]
        known = {n.name for n in self.spec.nodes}
        return [{"node": n, "metric": metric,
                 "points": [[NOW, 1.0 * MIB]] if n in known else []} for n in names]

    def logs(self, q: str | None = None, node: str | None = None,
             service: str | None = None, level: str | None = None,
             since: float | None = None, limit: int = 200) -> list[dict[str, Any]]:
        self.calls.append(("logs", (q, node, service)))
        return [r for r in self.log_rows
                if (node is None or r["node"] == node)
                and (service is None or r["service"] == service)]

    def nodes(self) -> list[dict[str, Any]]:
        return [{"name": n.name, "role": n.role.value, "ip": str(self.spec.ip_of(n)),
                 "cpuset": "0", "cpus": 1, "memory": 125 * MIB, "features": [],
                 "state": "up", "slurm_state": "idle", "reason": ""} for n in self.spec.nodes]

    def add_nodes(self, names: list[str] | None = None, count: int = 0, *args: Any,
                  **kwargs: Any) -> list[dict[str, Any]]:
        self.calls.append(("add_nodes", (names, count)))
        return [{"name": n} for n in (names or [f"compute{9 + i}" for i in range(count)])]

    def remove_nodes(self, names: list[str], drain: bool = False) -> list[str]:
        self.calls.append(("remove_nodes", (names, drain)))
        return []

    def stop_node(self, name: str) -> None:
        self.calls.append(("stop_node", (name,)))

    def start_node(self, name: str, wait: bool = True) -> None:
        self.calls.append(("start_node", (name,)))


def write_state(root: Path, spec: ClusterSpec, live: bool = True) -> ClusterPaths:
    """A cluster's state directory as `up` leaves it: spec, ledger, munge key, token."""
    paths = ClusterPaths(root / spec.name)
    paths.etc.mkdir(parents=True)
    paths.run.mkdir()
    paths.spec.write_text(json.dumps(spec.to_dict()))
    paths.ledger.write_text(json.dumps({"op": "add", "kind": "bridge", "id": "br"}) + "\n"
                            if live else "")
    paths.munge_key.write_bytes(b"k" * 32)
    (paths.run / "token").write_text("tok-123\n")
    return paths


def install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
            manager: FakeManager | None = None) -> FakeManager:
    """Point vhpc.control at a fake manager of a live cluster under tmp_path."""
    monkeypatch.setenv("VHPC_STATE_ROOT", str(tmp_path))
    fake = manager or FakeManager(make_spec())
    if not (tmp_path / fake.spec.name).exists():
        write_state(tmp_path, fake.spec)
    monkeypatch.setattr(control, "ensure_manager", lambda name: fake)
    return fake


@dataclass(frozen=True)
class Result:
    """What a user sees of one `vhpc` run."""

    code: int
    stdout: str
    stderr: str


def run_vhpc(*args: str, env: dict[str, str] | None = None) -> Result:
    """Run `vhpc ARGS` in-process as the console entry point does (errors mapped)."""
    runner = CliRunner()
    with runner.isolation(env=env) as streams:
        code = run_cli(lambda: cli.main(list(args), prog_name="vhpc", standalone_mode=False),
                       debug=False)
        sys.stdout.flush()  # as the interpreter does at exit
        sys.stderr.flush()
        out, err = streams[0], streams[1]  # read inside: click < 8.4 closes them on exit
        assert err is not None
        return Result(code, out.getvalue().decode(), err.getvalue().decode())


def age_of(seconds: float) -> float:
    """A timestamp `seconds` ago."""
    return time.time() - seconds
