"""Batch output files are credited to the node that ran the job (server/observing.JobHosts)."""

from __future__ import annotations

from pathlib import Path

from vhpc.runtime.hostops import CommandResult
from vhpc.server.observing import JobHosts


class FakeSqueue:
    """Answers `squeue -j IDS -o '%i %B'` from a table, recording each call."""

    def __init__(self, hosts: dict[str, str], fail: str = "") -> None:
        self.hosts = hosts
        self.fail = fail
        self.calls: list[list[str]] = []

    def run(self, argv: list[str], check: bool = True, timeout: float = 30.0) -> CommandResult:
        self.calls.append(argv)
        if self.fail:
            return CommandResult(argv, 1, "", self.fail)
        ids = argv[argv.index("-j") + 1].split(",")
        out = "".join(f"{i} {self.hosts[i]}\n" for i in ids if i in self.hosts)
        return CommandResult(argv, 0, out, "")


def files(*ids: str) -> list[Path]:
    return [Path(f"/var/lib/vhpc/c/home/cluser/slurm-{i}.out") for i in ids]


def test_files_go_to_the_batch_host_and_each_job_is_asked_once() -> None:
    squeue = FakeSqueue({"1": "compute1", "2": "compute3", "3_4": "compute1"})
    hosts = JobHosts()
    got = hosts.files_by_host(files("1", "2", "3_4"), squeue)
    assert got == {"compute1": files("1", "3_4"), "compute3": files("2")}
    hosts.files_by_host(files("1", "2", "3_4"), squeue)
    assert len(squeue.calls) == 1


def test_pending_jobs_are_asked_again_and_forgotten_jobs_are_not_followed() -> None:
    squeue = FakeSqueue({"5": "n/a"})
    hosts = JobHosts()
    assert hosts.files_by_host(files("5", "6"), squeue) == {}  # 6: Slurm forgot it
    squeue.hosts["5"] = "compute2"
    assert hosts.files_by_host(files("5", "6"), squeue) == {"compute2": files("5")}
    assert squeue.calls[-1][squeue.calls[-1].index("-j") + 1] == "5"


def test_a_failing_squeue_leaves_jobs_unknown_until_it_answers() -> None:
    squeue = FakeSqueue({"7": "compute1"}, fail="slurm_load_jobs error: Unable to contact")
    hosts = JobHosts()
    assert hosts.files_by_host(files("7"), squeue) == {}
    squeue.fail = ""
    assert hosts.files_by_host(files("7"), squeue) == {"compute1": files("7")}


def test_an_id_squeue_calls_invalid_is_not_asked_again() -> None:
    squeue = FakeSqueue({}, fail="slurm_load_jobs error: Invalid job id specified")
    hosts = JobHosts()
    assert hosts.files_by_host(files("8"), squeue) == {}
    hosts.files_by_host(files("8"), squeue)
    assert len(squeue.calls) == 1


def test_other_files_in_the_home_are_ignored() -> None:
    squeue = FakeSqueue({})
    assert JobHosts().files_by_host([Path("/h/cluser/slurm-x.out")], squeue) == {}
    assert squeue.calls == []
