"""`vhpc chaos run FILE`: replay a scenario of load and timed faults against a cluster.

The scenario (vhpc/workloads/chaos.py) is checked first, also against the running cluster
(its nodes, with the same checks `vhpc fault` makes); then each [[load]] runs in its own
thread (vhpc/load_runner.py) while this thread injects and clears the faults on time
through the manager's API (ManagerClient.add_fault/clear_faults). Every fault this run
made is cleared at the end, on Ctrl-C and on an error.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import BaseModel, Field

from vhpc import control
from vhpc.client import ManagerClient
from vhpc.cluster.faults import FaultBook, FaultKind, FaultSpec, check_request
from vhpc.errors import UserError, VhpcError
from vhpc.load_runner import LoadRunner
from vhpc.workloads.chaos import FaultStep, Scenario, ScenarioError, read_scenario
from vhpc.workloads.load import LoadReport

TimelineFn = Callable[[str], None]


class FaultRecord(BaseModel):
    """One [[fault]] of the scenario as it went: when applied and cleared (seconds in)."""

    step: int = Field(description="its [[fault]] table, from 1")
    label: str
    ids: list[str] = Field(default_factory=list, description="the manager's fault ids")
    description: str = ""
    applied_at: float | None = None
    cleared_at: float | None = None
    error: str = ""


class ChaosReport(BaseModel):
    """What `vhpc chaos run` prints at the end (`--json`)."""

    scenario: str
    started: float
    seconds: float
    interrupted: bool = False
    timeline: list[str]
    loads: list[LoadReport]
    faults: list[FaultRecord]
    left_active: list[str] = Field(default_factory=list,
                                   description="fault ids that could not be cleared")


def check_against_cluster(scenario: Scenario, cluster: str, where: str) -> None:
    """The faults' nodes and values as `vhpc fault` checks them (ScenarioError)."""
    spec = control.load_spec(cluster)
    problems = []
    for step in scenario.faults:
        if step.kind is FaultKind.KILL:
            continue  # which daemons run is the manager's to say, at the time
        try:
            check_request(FaultSpec(step.kind, step.nodes, step.peers, step.percent,
                                    step.rate, step.delay_ms), spec, FaultBook(), [])
        except VhpcError as err:
            problems.append(f"[[fault]] #{step.index + 1}: {err}")
    if problems:
        raise ScenarioError(where, problems)


@dataclass
class _Action:
    at: float
    order: int  # clears before injections at the same second
    step: FaultStep
    clear: bool


class ChaosRunner:
    """Runs one checked scenario against one cluster."""

    def __init__(self, cluster: str, scenario: Scenario,
                 timeline: TimelineFn | None = None, wait_timeout: float = 600.0) -> None:
        """Plan the loads now (bad options raise before anything runs)."""
        self.cluster = cluster
        self.scenario = scenario
        self.client: ManagerClient = control.ensure_manager(cluster)
        self.stop = threading.Event()
        self.loads = [LoadRunner(cluster, step.options, stop=self.stop,
                                 wait_timeout=wait_timeout) for step in scenario.loads]
        self.records = [FaultRecord(step=s.index + 1, label=s.label())
                        for s in scenario.faults]
        self.lines: list[str] = []
        self._print = timeline
        self._started = 0.0
        self._reports: list[LoadReport | None] = [None] * len(self.loads)

    def say(self, message: str) -> None:
        """One timeline line, stamped with the seconds since the start."""
        line = f"{time.time() - self._started:7.1f}s  {message}"
        self.lines.append(line)
        if self._print is not None:
            self._print(line)

    def _run_load(self, index: int, delay: float) -> None:
        if self.stop.wait(delay):
            return
        runner = self.loads[index]
        self.say(f"load #{index + 1} starts: {len(runner.jobs)} jobs ({runner.name})")
        report = runner.run()
        self._reports[index] = report
        self.say(f"load #{index + 1} ends: {report.total.completed} completed, "
                 f"{report.total.failed} failed of {report.total.submitted}")

    def run(self) -> ChaosReport:
        """Run the scenario; clear its faults whatever happens; return the report."""
        self._started = time.time()
        self.say(f"scenario {self.scenario.name!r}: {len(self.loads)} loads, "
                 f"{len(self.records)} faults")
        threads = [threading.Thread(target=self._run_load, args=(i, step.at), daemon=True,
                                    name=f"vhpc-chaos-load{i}")
                   for i, step in enumerate(self.scenario.loads)]
        interrupted = False
        try:
            for thread in threads:
                thread.start()
            self._play_faults()
            for thread in threads:
                while thread.is_alive():
                    thread.join(0.5)
        except KeyboardInterrupt:
            interrupted = True
            self.say("interrupted: stopping the loads and clearing the faults")
            self.stop.set()
            for thread in threads:
                thread.join(120)
        finally:
            left = self._clear_all()
        return ChaosReport(
            scenario=self.scenario.name, started=self._started,
            seconds=round(time.time() - self._started, 2),
            interrupted=interrupted or any(r is not None and r.interrupted
                                           for r in self._reports),
            timeline=self.lines, loads=[r for r in self._reports if r is not None],
            faults=self.records, left_active=left)

    def _play_faults(self) -> None:
        actions = [_Action(s.at, 1, s, False) for s in self.scenario.faults]
        actions += [_Action(s.at + s.duration, 0, s, True)
                    for s in self.scenario.faults if s.duration is not None]
        for action in sorted(actions, key=lambda a: (a.at, a.order, a.step.index)):
            if self.stop.wait(max(0.0, self._started + action.at - time.time())):
                return
            if action.clear:
                self._clear(action.step.index)
            else:
                self._inject(action.step)

    def _inject(self, step: FaultStep) -> None:
        record = self.records[step.index]
        try:
            faults = self.client.add_fault(step.kind.value, list(step.nodes), list(step.peers),
                                           step.percent, step.rate, step.delay_ms,
                                           step.daemon)
        except VhpcError as err:
            record.error = str(err)
            self.say(f"fault #{record.step} {record.label} refused: {err}")
            return
        record.applied_at = round(time.time() - self._started, 2)
        record.description = "; ".join(f.description for f in faults)
        if step.kind is FaultKind.KILL:  # done at once, nothing to clear
            record.cleared_at = record.applied_at
        else:
            record.ids = [f.id for f in faults]
        self.say(f"fault #{record.step} applied ({', '.join(f.id for f in faults)}): "
                 f"{record.description}")

    def _clear(self, index: int) -> None:
        record = self.records[index]
        if not record.ids or record.cleared_at is not None:
            return
        failed = []
        for fault_id in record.ids:
            try:
                self.client.clear_faults(fault_id=fault_id)
            except VhpcError as err:
                failed.append(f"{fault_id} ({err})")
        record.cleared_at = round(time.time() - self._started, 2)
        if failed:
            record.error = f"clearing failed: {'; '.join(failed)}"
            self.say(f"fault #{record.step} not cleared: {record.error}")
        else:
            self.say(f"fault #{record.step} cleared ({', '.join(record.ids)})")

    def _clear_all(self) -> list[str]:
        """Clear every fault of this run still active; the ids that stayed."""
        for record in self.records:
            if record.ids and record.cleared_at is None:
                self._clear(record.step - 1)
        try:
            active = {f.id for f in self.client.list_faults()}
        except VhpcError:
            return [i for r in self.records if r.error for i in r.ids]
        return [i for r in self.records for i in r.ids if i in active]


def run_scenario(cluster: str, path: str, timeline: TimelineFn | None = None,
                 wait_timeout: float = 600.0) -> ChaosReport:
    """Check a scenario file (also against the cluster), then run it."""
    try:
        scenario = read_scenario(path)
        check_against_cluster(scenario, cluster, path)
    except ScenarioError as err:  # every problem, one line each
        raise UserError(str(err)) from None
    return ChaosRunner(cluster, scenario, timeline, wait_timeout).run()
