"""Chaos scenarios (`vhpc chaos run FILE`): load and timed faults in one TOML file.

    name = "a bad afternoon"
    seed = 1                       # default seed of the loads

    [[load]]                       # `vhpc load` options, starting `at` seconds in
    at = 0
    rate = 2
    duration = 120
    mean_runtime = 1.0

    [[fault]]                      # `vhpc fault` at `at` s, cleared `duration` s later
    at = 30
    kind = "partition"             # partition, loss, rate, delay, freeze, kill
    nodes = ["compute2"]
    duration = 60

Reading a file checks every table and key, and reports every problem at once, one line
each ("[[fault]] #2: unknown key 'node' (known: ...)"), before anything runs. Pure: no
cluster here (the runner, vhpc/chaos_runner.py, checks node names against the cluster).
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vhpc.cluster.faults import MAX_DELAY_MS, FaultKind, parse_rate
from vhpc.errors import VhpcError
from vhpc.workloads.load import DISTRIBUTIONS, LoadOptions, check_options

TOP_KEYS = ("name", "seed", "load", "fault")
LOAD_KEYS = ("at", "seed", "rate", "count", "duration", "mean_runtime", "distribution",
             "fail_rate", "oom_rate", "max_size")
FAULT_KEYS = ("at", "kind", "nodes", "from", "percent", "rate", "delay_ms", "daemon",
              "duration")
MAX_SECONDS = 86400.0
#: the `vhpc load` flags in check_options' messages -> the scenario's keys
FLAG_KEYS = {f"--{key.replace('_', '-')}": key for key in LOAD_KEYS}


class ScenarioError(ValueError):
    """A scenario file with problems: one line per problem."""

    def __init__(self, path: str, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(f"{path}: {p}" for p in problems))


@dataclass(frozen=True)
class LoadStep:
    """A job mix starting `at` seconds into the scenario."""

    at: float
    options: LoadOptions


@dataclass(frozen=True)
class FaultStep:
    """A fault injected `at` seconds in, cleared `duration` s later (None: at the end)."""

    index: int
    at: float
    kind: FaultKind
    nodes: tuple[str, ...] = ()
    peers: tuple[str, ...] = ()
    percent: float | None = None
    rate: str = ""
    delay_ms: int | None = None
    daemon: str = ""
    duration: float | None = None

    def label(self) -> str:
        """A short description: 'partition compute2', 'kill slurmd@compute1'."""
        target = self.daemon if self.kind is FaultKind.KILL else ",".join(self.nodes)
        extra = (f" {self.percent:g}%" if self.percent is not None else "") + \
            (f" {self.rate}" if self.rate else "") + \
            (f" {self.delay_ms}ms" if self.delay_ms is not None else "") + \
            (f" from {','.join(self.peers)}" if self.peers else "")
        return f"{self.kind.value} {target}{extra}"


@dataclass(frozen=True)
class Scenario:
    """A checked scenario: its loads and faults, in file order."""

    name: str
    loads: tuple[LoadStep, ...]
    faults: tuple[FaultStep, ...]

    @property
    def length(self) -> float:
        """Seconds until the last timed fault is cleared (loads may run longer)."""
        return max((f.at + (f.duration or 0.0) for f in self.faults), default=0.0)


def read_scenario(path: str | Path) -> Scenario:
    """Read and check a scenario file (ScenarioError lists every problem)."""
    where = str(path)
    try:
        text = Path(path).read_text()
    except OSError as err:
        raise ScenarioError(where, [f"cannot read it ({err.strerror})"]) from None
    return parse_scenario(text, where)


def parse_scenario(text: str, where: str = "scenario") -> Scenario:
    """Check a scenario's TOML text (ScenarioError lists every problem)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ScenarioError(where, [f"not valid TOML: {err}"]) from None
    problems: list[str] = []
    for key in data:
        if key not in TOP_KEYS:
            problems.append(f"unknown key {key!r} (known: {', '.join(TOP_KEYS)}; "
                            "loads are [[load]], faults [[fault]])")
    name = data.get("name", Path(where).stem)
    if not isinstance(name, str):
        problems.append(f"name must be a string, not {name!r}")
        name = Path(where).stem
    seed = data.get("seed", 0)
    if not _is_int(seed):
        problems.append(f"seed must be an integer, not {seed!r}")
        seed = 0
    loads = [_load(t, i, seed, problems) for i, t in enumerate(_tables(data, "load", problems))]
    faults = [_fault(t, i, problems) for i, t in enumerate(_tables(data, "fault", problems))]
    if not loads and not faults and not problems:
        problems.append("nothing to run: add a [[load]] or a [[fault]] table")
    if problems:
        raise ScenarioError(where, problems)
    return Scenario(name, tuple(s for s in loads if s is not None),
                    tuple(s for s in faults if s is not None))


def _tables(data: dict[str, Any], key: str, problems: list[str]) -> list[dict[str, Any]]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        problems.append(f"{key} must be tables: write [[{key}]] sections")
        return []
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_text(value: Any) -> bool:
    return isinstance(value, str)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _seconds(table: dict[str, Any], key: str, where: str, problems: list[str],
             default: float | None, positive: bool = False) -> float | None:
    value = table.get(key, default)
    if value is None:
        return None
    if not _is_number(value) or not (value > 0 if positive else value >= 0) \
            or value > MAX_SECONDS:
        low = "above 0" if positive else "0 or more"
        problems.append(f"{where}: {key} must be seconds {low} and at most "
                        f"{MAX_SECONDS:.0f}, not {value!r}")
        return None
    return float(value)


def _unknown(table: dict[str, Any], known: tuple[str, ...], where: str,
             problems: list[str]) -> None:
    for key in table:
        if key not in known:
            problems.append(f"{where}: unknown key {key!r} (known: {', '.join(known)})")


def _load(table: dict[str, Any], index: int, seed: int,
          problems: list[str]) -> LoadStep | None:
    where = f"[[load]] #{index + 1}"
    before = len(problems)
    _unknown(table, LOAD_KEYS, where, problems)
    at = _seconds(table, "at", where, problems, 0.0)
    values: dict[str, Any] = {"seed": table.get("seed", seed)}
    kinds: dict[str, Callable[[Any], bool]] = {
        "seed": _is_int, "count": _is_int, "max_size": _is_int, "distribution": _is_text}
    for key in ("seed", "rate", "count", "duration", "mean_runtime", "distribution",
                "fail_rate", "oom_rate", "max_size"):
        if key not in table and key != "seed":
            continue
        value = values["seed"] if key == "seed" else table[key]
        if not kinds.get(key, _is_number)(value):
            kind = ("one of " + ", ".join(DISTRIBUTIONS) if key == "distribution"
                    else "an integer" if kinds.get(key) is _is_int else "a number")
            problems.append(f"{where}: {key} must be {kind}, not {value!r}")
        else:
            values[key] = value
    if len(problems) > before:
        return None
    options = LoadOptions(**values)
    try:
        check_options(options)
    except ValueError as err:
        message = str(err)
        for flag, key in FLAG_KEYS.items():
            message = message.replace(flag, key)
        problems.append(f"{where}: {message}")
        return None
    return LoadStep(at or 0.0, options)


def _names(value: Any) -> tuple[str, ...] | None:
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list) and all(isinstance(v, str) and v for v in value):
        return tuple(value)
    return None


def _fault(table: dict[str, Any], index: int, problems: list[str]) -> FaultStep | None:
    where = f"[[fault]] #{index + 1}"
    before = len(problems)
    _unknown(table, FAULT_KEYS, where, problems)
    at = _seconds(table, "at", where, problems, None)
    if "at" not in table:
        problems.append(f"{where}: say when: at = SECONDS from the start")
    duration = _seconds(table, "duration", where, problems, None, positive=True)
    raw_kind = table.get("kind")
    try:
        kind = FaultKind(str(raw_kind))
    except ValueError:
        problems.append(f"{where}: kind must be one of "
                        f"{', '.join(k.value for k in FaultKind)}, not {raw_kind!r}")
        return None
    nodes = _names(table.get("nodes", []))
    peers = _names(table.get("from", []))
    if nodes is None or peers is None:
        problems.append(f"{where}: nodes and from must be node names "
                        "(a list of strings, e.g. [\"compute1\", \"compute2\"])")
    elif kind is not FaultKind.KILL and not nodes:
        problems.append(f"{where}: a {kind.value} fault needs nodes = [\"computeN\", ...]")
    needs = {FaultKind.LOSS: "percent", FaultKind.RATE: "rate", FaultKind.DELAY: "delay_ms",
             FaultKind.KILL: "daemon"}
    for key in ("percent", "rate", "delay_ms", "daemon", "from"):
        if key in table and needs.get(kind) != key and not (key == "from" and
                                                             kind is FaultKind.PARTITION):
            problems.append(f"{where}: {key} does not apply to a {kind.value} fault")
    if kind in needs and needs[kind] not in table:
        problems.append(f"{where}: a {kind.value} fault needs {needs[kind]} = ...")
    _fault_values(table, kind, where, problems)
    if kind is FaultKind.KILL and duration is not None:
        problems.append(f"{where}: a kill is done at once: drop its duration")
    if len(problems) > before:
        return None
    return FaultStep(index=index, at=at or 0.0, kind=kind, nodes=nodes or (),
                     peers=peers or (), percent=table.get("percent"),
                     rate=str(table.get("rate", "")), delay_ms=table.get("delay_ms"),
                     daemon=str(table.get("daemon", "")), duration=duration)


def _fault_values(table: dict[str, Any], kind: FaultKind, where: str,
                  problems: list[str]) -> None:
    """The range checks of `vhpc fault` on percent, rate, delay_ms and daemon."""
    percent, rate, delay, daemon = (table.get(k) for k in ("percent", "rate", "delay_ms",
                                                             "daemon"))
    if kind is FaultKind.LOSS and percent is not None and \
            (not _is_number(percent) or not 0 < percent <= 100):
        problems.append(f"{where}: percent must be above 0 and at most 100, not {percent!r}")
    if kind is FaultKind.RATE and rate is not None:
        try:
            parse_rate(str(rate))
        except VhpcError as err:
            problems.append(f"{where}: {err} ({getattr(err, 'fix', '')})")
    if kind is FaultKind.DELAY and delay is not None and \
            (not _is_int(delay) or not 0 < delay <= MAX_DELAY_MS):
        problems.append(f"{where}: delay_ms must be whole milliseconds from 1 to "
                        f"{MAX_DELAY_MS}, not {delay!r}")
    if kind is FaultKind.KILL and daemon is not None and \
            (not isinstance(daemon, str) or not daemon):
        problems.append(f"{where}: daemon must name one, e.g. \"slurmd@compute1\"")
