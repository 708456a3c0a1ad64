"""Host-side Slurm clients (sinfo, squeue, scontrol) against a cluster's slurm.conf."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from vhpc.errors import CommandError
from vhpc.runtime.hostops import CommandResult, run_command
from vhpc.services.host_clients import client_env


@dataclass(frozen=True)
class SlurmClient:
    """Runs Slurm's own client programs with SLURM_CONF pointing at the cluster."""

    conf: Path
    passwd: Path | None = None  # the cluster's passwd: names users the host does not know

    def run(self, argv: list[str], check: bool = True, timeout: float = 30.0,
            input: str | None = None) -> CommandResult:
        """Run a Slurm client command on the host (`input`: its stdin)."""
        env = client_env(self.conf, os.environ)  # an image cluster: the image's clients
        return run_command(argv, check=check, timeout=timeout, env=env, input=input)

    def ping(self) -> bool:
        """True once slurmctld answers."""
        result = self.run(["scontrol", "ping"], check=False, timeout=10)
        return result.returncode == 0 and "UP" in result.stdout

    def node_states(self) -> dict[str, str]:
        """Node name -> Slurm state (lowercase, flags like '*' kept: 'idle', 'down*')."""
        return parse_node_states(self.node_rows())

    def node_rows(self) -> str:
        """`sinfo -N -o '%N %T %C'`: a line per node and partition (state, CPU counts)."""
        try:
            result = self.run(["sinfo", "-h", "-N", "-o", "%N %T %C"], check=False, timeout=15)
        except CommandError:  # timed out: a busy slurmctld (1024 nodes registering) answers
            return ""         # no states yet, like one that is down
        return result.stdout if result.returncode == 0 else ""

    def node_reasons(self) -> dict[str, str]:
        """Node name -> reason for nodes down or drained."""
        result = self.run(["sinfo", "-h", "-R", "-N", "-o", "%N|%E"], check=False, timeout=15)
        out: dict[str, str] = {}
        for line in result.stdout.splitlines():
            name, _, reason = line.partition("|")
            if name:
                out[name.strip()] = reason.strip()
        return out

    def jobs(self) -> list[dict[str, str]]:
        """The queue: id, name, user, state, nodes, time."""
        fmt = "%i|%j|%U|%T|%N|%M"  # uid, not %u: the host's passwd lacks the cluster user
        result = self.run(["squeue", "-h", "-o", fmt], check=False, timeout=15)
        return parse_jobs(result.stdout, user_names(self.passwd))


def user_names(passwd: Path | None) -> dict[str, str]:
    """uid (as text) -> user name, from a passwd file (empty if there is none)."""
    if passwd is None:
        return {}
    try:
        lines = passwd.read_text().splitlines()
    except OSError:
        return {}
    return {f[2]: f[0] for f in (ln.split(":") for ln in lines) if len(f) > 2}


def parse_jobs(text: str, users: dict[str, str]) -> list[dict[str, str]]:
    """Parse `squeue -o '%i|%j|%U|%T|%N|%M'`, naming users by the cluster's passwd."""
    keys = ("id", "name", "user", "state", "nodes", "time")
    jobs = []
    for line in text.splitlines():
        if line.strip():
            job = dict(zip(keys, line.split("|"), strict=False))
            job["user"] = users.get(job.get("user", ""), job.get("user", ""))
            jobs.append(job)
    return jobs


def parse_node_states(text: str) -> dict[str, str]:
    """Parse `sinfo -N -o '%N %T ...'` output (a node may appear once per partition)."""
    states: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2:
            states[parts[0]] = parts[1].lower()
    return states


CPU_USES = ("allocated", "idle", "other", "total")


def cpu_counts(text: str) -> dict[str, int]:
    """`sinfo -N -o "%N %T %C"` (node, state, allocated/idle/other/total) summed over the
    nodes, each node once though it be in several partitions; {} if nothing is readable."""
    per_node: dict[str, list[int]] = {}
    for line in text.splitlines():
        parts = line.split()
        name, fields = (parts[0], parts[-1].split("/")) if parts else ("", [])
        if name and len(fields) == 4 and all(f.isdigit() for f in fields):
            per_node[name] = [int(f) for f in fields]
    if not per_node:
        return {}
    return {use: sum(c[i] for c in per_node.values()) for i, use in enumerate(CPU_USES)}


@dataclass(frozen=True)
class SlurmSnapshot:
    """Node states and the queue as read at `ts` (epoch seconds)."""

    ts: float = 0.0
    nodes: dict[str, str] = field(default_factory=dict)
    jobs: list[dict[str, str]] = field(default_factory=list)
    cpus: dict[str, int] = field(default_factory=dict)  # allocated/idle/other/total


class SlurmView:
    """One shared, timestamped read of sinfo + squeue for every reader of the manager.

    The sampler refreshes it every interval (`max_age=0`); `vhpc status` asks for a fresh
    one; the dashboard accepts one a few seconds old, so its requests run no Slurm command.
    Concurrent readers wait for one refresh instead of each running the clients.
    """

    def __init__(self, client: SlurmClient) -> None:
        self.client = client
        self._snapshot = SlurmSnapshot()
        self._lock = threading.Lock()

    def snapshot(self, max_age: float = 0.0) -> SlurmSnapshot:
        """A snapshot at most `max_age` seconds old (0: read Slurm now)."""
        asked = time.time()
        with self._lock:
            current = self._snapshot
            # a refresh that started after this call began is as fresh as asking anew
            if current.ts >= asked or (current.ts and asked - current.ts <= max_age):
                return current
            with ThreadPoolExecutor(max_workers=2) as pool:  # sinfo and squeue side by side
                nodes = pool.submit(self.client.node_rows)  # states and CPUs in one sinfo
                jobs = pool.submit(self.client.jobs)
                rows = nodes.result()
                self._snapshot = SlurmSnapshot(time.time(), parse_node_states(rows),
                                               jobs.result(), cpu_counts(rows))
            return self._snapshot
