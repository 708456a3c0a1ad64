"""Issue 13 for real: bounds, option checks before boot, colliding cluster ids, clean.

Each test reproduces a command of the issue against the real CLI and a real manager.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.helpers import STATE_ROOT, leftovers, vhpc

pytestmark = pytest.mark.privileged

# Two names whose classic id (sha1[:4]) is the same, like rz23 and rz352 in the issue.
TWINS = ("he97", "he530")
RUNNING = "herun"
MANAGER_HEADROOM = 96 << 20  # new memory the capped manager may charge while refusing


def one_line_refusal(result: subprocess.CompletedProcess[str], expected: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("vhpc: ") and expected in lines[0], lines[0]


@pytest.mark.parametrize(("args", "expected"), [
    (["--listen", "8.8.8.8:80"], "8.8.8.8 is not an address of this host"),
    (["--syslog", "1.2.3.4:notaport"], "--syslog '1.2.3.4:notaport': the port must be"),
    (["--graphite", "host:99999"], "--graphite 'host:99999': the port must be"),
    (["--subnet", "127.0.0.0/24"], "is not a private range"),
    (["--subnet", "0.0.0.0/24"], "is not a private range"),
    (["--subnet", "224.0.0.0/24"], "is not a private range"),
    (["--subnet", "8.8.8.0/24"], "is not a private range"),
    (["--subnet", "169.254.0.0/24"], "is not a private range"),
    (["--partition", "a b"], "invalid --partition 'a b'"),
    (["--partition", ""], "invalid --partition ''"),
    (["-n", "100000"], "a cluster holds at most 2048 compute nodes"),
    (["--cpus", "0"], "--cpus 0: must be from 1"),
    (["--max-nodes", "0"], "--max-nodes 0: must be from 1"),
])
def test_up_refuses_bad_options_before_making_anything(args: list[str], expected: str) -> None:
    name = "hebad"
    result = vhpc("-c", name, "up", "-n", "1", *args, check=False, timeout=60)
    one_line_refusal(result, expected)
    assert "Traceback" not in result.stderr
    assert not (STATE_ROOT / name).exists()
    assert leftovers(name) == []


def _cluster_id(name: str) -> str:
    spec = json.loads((STATE_ROOT / name / "spec.json").read_text())
    return str(spec.get("net_id") or "")


def _links(cluster_id: str) -> set[str]:
    return {p.name for p in Path("/sys/class/net").iterdir()
            if p.name.startswith(f"vh{cluster_id}")}


def test_two_clusters_whose_names_hash_alike_both_run() -> None:
    # issue 13: `up rz23; up rz352` -> the second failed and its rollback deleted the
    # first one's veths
    for name in TWINS:
        vhpc("-c", name, "clean", "--force", check=False)
    ids: dict[str, str] = {}
    links: dict[str, set[str]] = {}
    try:
        for name in TWINS:
            vhpc("-c", name, "up", "-n", "2")
            ids[name] = _cluster_id(name)
            links[name] = _links(ids[name])
        first, second = TWINS
        assert ids[first] != ids[second] and len(links[first]) == 6  # bridge, 5 veths
        assert not links[first] & links[second]
        for name in TWINS:
            out = vhpc("-c", name, "exec", "slurm", "--", "srun", "-N2", "hostname").stdout
            assert sorted(out.split()) == ["compute0", "compute1"]
        vhpc("-c", second, "down")
        assert _links(ids[first]) == links[first]  # the twin's down took nothing of ours
        out = vhpc("-c", first, "exec", "slurm", "--", "srun", "-N2", "hostname").stdout
        assert sorted(out.split()) == ["compute0", "compute1"]
    finally:
        for name in TWINS:
            vhpc("-c", name, "down", check=False)
    for name in TWINS:
        assert leftovers(name) == []
        assert not _links(ids.get(name, "none"))


# -- one running cluster for the rest: bad input must not hurt it -----------------------
def _memory_cgroup_of(pid: int) -> Path | None:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            return Path("/sys/fs/cgroup/memory") / path.lstrip("/")
    return None


@pytest.fixture(scope="module")
def capped_cluster() -> Iterator[tuple[str, int]]:
    """A running cluster whose manager sits in a memory cgroup capped near its size."""
    vhpc("-c", RUNNING, "clean", "--force", check=False)
    vhpc("-c", RUNNING, "up", "-n", "1", "--memory", "100M")
    pid = int((STATE_ROOT / RUNNING / "run" / "manager.pid").read_text())
    home = _memory_cgroup_of(pid)
    if home is None or not Path("/sys/fs/cgroup/memory").is_dir():
        vhpc("-c", RUNNING, "down", check=False)
        pytest.skip("needs the cgroup v1 memory controller")
    cap = home / "he-manager-cap"
    cap.mkdir(exist_ok=True)
    (cap / "memory.limit_in_bytes").write_text(str(MANAGER_HEADROOM))
    try:
        # cgroup.procs moves every thread at once: walking /proc/PID/task races with
        # threads that end in between (CI saw ProcessLookupError)
        (cap / "cgroup.procs").write_text(str(pid))
        yield RUNNING, pid
    finally:
        vhpc("-c", RUNNING, "down", check=False)
        if cap.exists():
            for task in (cap / "cgroup.procs").read_text().split():
                with contextlib.suppress(ProcessLookupError):  # ended in between
                    (home / "cgroup.procs").write_text(task)
            cap.rmdir()
        assert leftovers(RUNNING) == []


def _peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def _api(name: str) -> httpx.Client:
    socket = STATE_ROOT / name / "run" / "manager.sock"
    return httpx.Client(transport=httpx.HTTPTransport(uds=str(socket)), base_url="http://vhpc",
                        timeout=60)


WORST_BODIES = [
    {"count": 1e30},
    {"count": 100_000_000},
    {"count": -5},
    {"names": [f"n{i}" for i in range(20_000)]},
    {"cpuset": "0-99999999999"},
    {"memory": "9" * 400 + "G"},
    {"features": ["f"] * 50_000},
]


def test_worst_node_adds_leave_the_manager_flat(capped_cluster: tuple[str, int]) -> None:
    name, pid = capped_cluster
    before = _peak_rss(pid)
    for count in ("100000000", "0"):
        result = vhpc("-c", name, "node", "add", "--count", count, check=False, timeout=60)
        one_line_refusal(result, f"--count {count}")
    with _api(name) as api:
        for body in WORST_BODIES:
            response = api.post("/api/v1/nodes", json=body)
            assert 400 <= response.status_code < 500, (body, response.text[:300])
        assert api.get("/api/v1/health").status_code == 200
    assert Path(f"/proc/{pid}").exists(), "the capped manager was OOM-killed"
    assert _peak_rss(pid) - before < MANAGER_HEADROOM // 2
    nodes = json.loads(vhpc("-c", name, "node", "ls", "--json").stdout)
    assert [n["name"] for n in nodes if n["role"] == "compute"] == ["compute0"]


def test_node_stop_of_a_node_named_twice_does_nothing(capped_cluster: tuple[str, int]) -> None:
    name, _ = capped_cluster
    result = vhpc("-c", name, "node", "stop", "compute0", "compute0", check=False)
    one_line_refusal(result, "'compute0' is named twice")
    nodes = json.loads(vhpc("-c", name, "node", "ls", "--json").stdout)
    assert next(n for n in nodes if n["name"] == "compute0")["state"] == "up"


def test_clean_refuses_a_running_cluster(capped_cluster: tuple[str, int]) -> None:
    name, _ = capped_cluster
    result = vhpc("-c", name, "clean", check=False)
    one_line_refusal(result, "is running (its manager answers)")
    assert "--force" in result.stderr
    out = vhpc("-c", name, "exec", "slurm", "--", "srun", "-N1", "hostname").stdout
    assert out.split() == ["compute0"]


def test_node_add_defaults_to_the_cluster_memory(capped_cluster: tuple[str, int]) -> None:
    name, _ = capped_cluster
    vhpc("-c", name, "node", "add", "big0", "--memory", "200M")
    added = json.loads(vhpc("-c", name, "node", "add", "--json").stdout)
    assert added[0]["memory"] == 100 << 20  # `up --memory 100M`, not big0's 200M
