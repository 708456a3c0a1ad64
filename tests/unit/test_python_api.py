"""vhpc.Cluster without root: scontrol parsing, results, life cycle against a fake control."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from vhpc import python_api
from vhpc.errors import CommandError, UserError, VhpcError
from vhpc.python_api import (
    Cluster,
    JobResult,
    RunResult,
    job_result,
    parse_scontrol_record,
)
from vhpc.spec.grow import NoSuchNodeError
from vhpc.spec.load import check_cluster_name

# Real `scontrol show job -o` output of slurm-wlm 22.05 in a vhpc cluster (trimmed).
SCONTROL = (
    "JobId=2 JobName=j.sh UserId=root(0) GroupId=root(0) MCS_label=N/A Priority=4294901758 "
    "JobState=COMPLETED Reason=None Dependency=(null) ExitCode=0:0 RunTime=00:00:00 "
    "AllocNode:Sid=slurm:10500 NodeList=compute[0-1] BatchHost=compute1 NumNodes=2 "
    "TRES=cpu=2,node=2,billing=2 Socks/Node=* NtasksPerN:B:S:C=0:0:*:* "
    "Command=/var/lib/vhpc/t6a/home/cluser/j.sh WorkDir=/var/lib/vhpc/t6a/home/cluser "
    "StdErr=/var/lib/vhpc/t6a/home/cluser/slurm-2.out StdIn=/dev/null "
    "StdOut=/var/lib/vhpc/t6a/home/cluser/slurm-2.out Power= \n"
)


def test_parse_scontrol_record_keeps_values_with_equals_and_odd_keys() -> None:
    info = parse_scontrol_record(SCONTROL)
    assert info["JobState"] == "COMPLETED"
    assert info["TRES"] == "cpu=2,node=2,billing=2"
    assert info["AllocNode:Sid"] == "slurm:10500"
    assert info["NtasksPerN:B:S:C"] == "0:0:*:*"
    assert info["Power"] == ""
    assert info["StdOut"] == "/var/lib/vhpc/t6a/home/cluser/slurm-2.out"


def test_job_result_reads_output_and_splits_exit_code(tmp_path: Path) -> None:
    out = tmp_path / "slurm-7.out"
    out.write_text("compute0\n")
    err = tmp_path / "slurm-7.err"
    err.write_text("oops\n")
    info = {"JobState": "FAILED", "ExitCode": "3:0", "NodeList": "compute0",
            "StdOut": str(out), "StdErr": str(err), "Reason": "NonZeroExitCode"}
    result = job_result(7, info)
    assert (result.state, result.exit_code, result.signal) == ("FAILED", 3, 0)
    assert result.stdout == "compute0\n" and result.stderr == "oops\n"
    assert not result.ok


def test_job_result_same_stdout_and_stderr_reads_once_and_tolerates_missing(
        tmp_path: Path) -> None:
    missing = tmp_path / "in-a-node-private-tmp.out"
    result = job_result(8, {"JobState": "COMPLETED", "ExitCode": "0:0",
                            "StdOut": str(missing), "StdErr": str(missing)})
    assert result.ok and result.stdout is None and result.stderr is None
    signalled = job_result(9, {"JobState": "CANCELLED", "ExitCode": "0:15",
                               "StdOut": "(null)"}, read_files=False)
    assert signalled.signal == 15 and signalled.stdout_path is None and not signalled.ok


def test_run_result_check_names_the_users_command() -> None:
    result = RunResult(["/bin/bash", "-c", "srun -N9 hostname"], 1, "", "srun: error: x\n",
                       "slurm", "cluser")
    assert result.command == "srun -N9 hostname" and not result.ok
    with pytest.raises(CommandError, match=r"'srun -N9 hostname' failed \(exit 1\)"):
        result.check_returncode()
    RunResult(["true"], 0, "", "", "slurm", "root").check_returncode()


def test_default_names_are_valid_cluster_names() -> None:
    names = {python_api.default_name() for _ in range(20)}
    for name in names:
        check_cluster_name(name)
    assert len(names) > 1


def test_not_started_cluster_says_how_to_start() -> None:
    cluster = Cluster(name="t6unit", nodes=2)
    assert "not started" in repr(cluster)
    with pytest.raises(UserError, match="with Cluster"):
        cluster.status()


class FakeControl:
    """Records the life-cycle calls the Python API makes (stands in for vhpc.control)."""

    def __init__(self, leftovers: list[str] | None = None) -> None:
        self.calls: list[tuple[str, str]] = []
        self.leftovers = leftovers or []
        self.down_error: Exception | None = None

    def up(self, options: Any, progress: Any = None, timeout: float = 0) -> Any:
        self.calls.append(("up", options.name))
        return SimpleNamespace(spec=SimpleNamespace(name=options.name), dashboard="")

    def ensure_manager(self, name: str) -> Any:
        self.calls.append(("manager", name))
        return SimpleNamespace(close=lambda: None,
                               status=lambda: SimpleNamespace(phase="ready"))

    def load_spec(self, name: str) -> Any:
        return SimpleNamespace(name=name)

    def down(self, name: str) -> list[str]:
        self.calls.append(("down", name))
        if self.down_error is not None:
            raise self.down_error
        return self.leftovers

    def clean(self, name: str, force: bool = False) -> list[str]:
        self.calls.append(("clean", name))
        return []


@pytest.fixture
def fake_control(monkeypatch: pytest.MonkeyPatch) -> FakeControl:
    fake = FakeControl()
    monkeypatch.setattr(python_api, "control", fake)
    return fake


def test_context_manager_tears_down_when_the_body_raises(fake_control: FakeControl) -> None:
    with pytest.raises(RuntimeError, match="body"), Cluster(name="t6unit"):
        raise RuntimeError("body")
    assert fake_control.calls == [("up", "t6unit"), ("manager", "t6unit"), ("down", "t6unit")]


def test_teardown_failure_is_noted_on_the_body_error(fake_control: FakeControl) -> None:
    fake_control.leftovers = ["link vh1234n2"]
    with pytest.raises(RuntimeError) as info, Cluster(name="t6unit"):
        raise RuntimeError("body")
    assert any("link vh1234n2" in note for note in info.value.__notes__)
    with pytest.raises(VhpcError, match="could not remove: link vh1234n2"), \
            Cluster(name="t6unit"):
        pass


def test_a_manager_refusing_down_falls_back_to_the_ledger(fake_control: FakeControl) -> None:
    fake_control.down_error = UserError("token required")
    with pytest.warns(RuntimeWarning, match="token required"), Cluster(name="t6unit"):
        pass
    assert fake_control.calls[-2:] == [("down", "t6unit"), ("clean", "t6unit")]


def test_attached_cluster_is_left_running(fake_control: FakeControl) -> None:
    with Cluster.attach("t6unit") as cluster:
        assert cluster.status().phase == "ready"
        assert "attached" in repr(cluster)
    assert ("down", "t6unit") not in fake_control.calls
    assert ("up", "t6unit") not in fake_control.calls


class FakeClient:
    """A manager client whose every node call fails as the manager's NoSuchNodeError would."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def add_nodes(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append(("add", *args))
        raise NoSuchNodeError("no node compute9", fix="'vhpc node ls' lists them")

    def remove_nodes(self, names: list[str], drain: bool = False) -> Any:
        self.calls.append(("remove", names, drain))
        raise NoSuchNodeError(f"no node {names[0]}")

    def close(self) -> None:
        pass


@pytest.mark.parametrize("call", [lambda c: c.add_node("compute9"),
                                  lambda c: c.remove_node("compute9", drain=True)])
def test_manager_errors_reach_the_caller_as_their_own_class(call: Any) -> None:
    cluster = Cluster(name="t6unit")
    fake = FakeClient()
    cluster._client = fake  # type: ignore[assignment]
    with pytest.raises(NoSuchNodeError, match="no node compute9"):
        call(cluster)
    assert fake.calls[0][:2] in (("add", ["compute9"]), ("remove", ["compute9"]))


def test_job_result_is_typed_and_comparable() -> None:
    a = JobResult(1, "COMPLETED", 0)
    assert a == JobResult(1, "COMPLETED", 0) and a.ok
