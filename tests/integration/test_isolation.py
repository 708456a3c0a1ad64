"""Isolation for real (issue 13, items 2, 5, 10): two clusters side by side.

Each node has its own PID namespace and /proc, its own /dev/shm, a pids.max; each cluster
its own user ids and a state directory only its group can enter; the munge socket
refuses host users. Every check tries to break through and expects to be refused.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.helpers import STATE_ROOT, leftovers, status, vhpc, wait_for
from vhpc.cluster.ledger import Kind, Ledger
from vhpc.runtime.proc import ProcessRecord, is_alive, record_of

pytestmark = pytest.mark.privileged

A, B = "hdisa", "hdisb"
PIDS_MAX = 128
NOBODY = 65534


def spec_uid(cluster: str) -> int:
    import json

    return int(json.loads((STATE_ROOT / cluster / "spec.json").read_text())["user_uid"])


def init_pids(cluster: str) -> dict[str, int]:
    """Node -> host pid of its init, from the cluster's ledger."""
    ledger = Ledger(STATE_ROOT / cluster / "ledger.jsonl")
    return {e.node: int(e.data["pid"]) for e in ledger.entries(Kind.PROCESS)
            if e.ident.startswith("init@")}


def cgroup_file(cluster: str, node: str, name: str) -> Path:
    """A file of the node's cgroup (v1 pids hierarchy or the v2 tree)."""
    v1 = Path("/sys/fs/cgroup/pids") / f"vhpc-{cluster}" / node / name
    return v1 if v1.parent.is_dir() else Path("/sys/fs/cgroup") / f"vhpc-{cluster}" / node / name


def uid_of(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Uid:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def node_procs(cluster: str, node: str) -> list[int]:
    text = cgroup_file(cluster, node, "cgroup.procs").read_text()
    return [int(p) for p in text.split()]


def as_user(uid: int, *argv: str, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
    """Run argv on the host as uid/gid `uid`, no supplementary groups."""
    return subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                           "--", *argv], capture_output=True, text=True, timeout=30,
                          env=dict(os.environ, **(env or {})), cwd="/")


def in_node(cluster: str, node: str, script: str, user: str | None = "cluser",
            check: bool = False) -> subprocess.CompletedProcess[str]:
    args = ["-c", cluster, "exec", node]
    if user:
        args += ["--user", user]
    return vhpc(*args, "--", "sh", "-c", script, check=check)


@pytest.fixture(scope="module")
def clusters() -> Iterator[dict[str, dict[str, int]]]:
    """Clusters A (pids.max 128) and B, 2 nodes each; removed with nothing left behind."""
    for name in (A, B):
        vhpc("-c", name, "clean", "--force", check=False)
    vhpc("-c", A, "up", "-n", "2", "--pids-max", str(PIDS_MAX), "--memory", "125M")
    inits: dict[str, dict[str, int]] = {}
    records: list[ProcessRecord] = []
    try:
        vhpc("-c", B, "up", "-n", "2")
        inits = {A: init_pids(A), B: init_pids(B)}
        records = [r for nodes in inits.values() for pid in nodes.values()
                   if (r := record_of(pid)) is not None]
        yield inits
    finally:
        mnt_ns = {os.stat(f"/proc/{pid}/ns/mnt").st_ino
                  for nodes in inits.values() for pid in nodes.values()
                  if os.path.exists(f"/proc/{pid}")}
        for name in (A, B):
            vhpc("-c", name, "down", check=False)
        for name in (A, B):
            assert leftovers(name) == []
        # the inits, their PID namespaces and every mount namespace with its /dev/shm
        alive = [record for record in records if is_alive(record)]  # pid and start time
        assert alive == []
        assert not any(_ns_inode(p) in mnt_ns for p in Path("/proc").iterdir()
                       if p.name.isdigit())


def _ns_inode(proc: Path) -> int | None:
    try:
        return os.stat(proc / "ns" / "mnt").st_ino
    except OSError:
        return None


def test_every_node_has_an_init_as_pid_1_and_sees_only_its_own_processes(
        clusters: dict[str, dict[str, int]]) -> None:
    assert set(clusters[A]) == {"slurm", "dns", "db", "compute0", "compute1"}
    out = in_node(A, "compute0", "ps -e -o pid=,comm=", user=None, check=True).stdout
    procs = [line.split(None, 1) for line in out.strip().splitlines()]
    assert procs[0] == ["1", "sh"]  # the node's init
    comms = {comm for _, comm in procs}
    # no host process, no manager, no other node's daemon
    assert comms <= {"sh", "sleep", "slurmd", "ps"}, comms
    job = vhpc("-c", A, "exec", "slurm", "--user", "cluser", "--", "srun", "-w", "compute1",
               "ps", "-e", "-o", "comm=").stdout.split()
    assert "slurmd" in job and "slurmctld" not in job and "munged" not in job
    assert not any("python" in c or "etcd" in c for c in job)


def test_dev_shm_is_each_nodes_own_and_bounded(clusters: dict[str, dict[str, int]]) -> None:
    name = f"hd-shm-{uuid.uuid4().hex[:8]}"
    in_node(A, "compute0", f"echo secret > /dev/shm/{name}", check=True)
    assert in_node(A, "compute0", f"cat /dev/shm/{name}").stdout.strip() == "secret"
    assert in_node(A, "compute1", f"test -e /dev/shm/{name}").returncode != 0
    assert in_node(B, "compute0", f"test -e /dev/shm/{name}").returncode != 0
    assert not Path("/dev/shm", name).exists()
    # The reproduction: 200 MB into /dev/shm of a 125M node OOM-looped slurmd.
    slurmd = _slurmd_pid(A, "compute0")
    fill = in_node(A, "compute0", "dd if=/dev/zero of=/dev/shm/fill bs=1M count=200 2>&1")
    assert fill.returncode != 0 and "No space left" in fill.stdout
    assert _slurmd_pid(A, "compute0") == slurmd
    in_node(A, "compute0", f"rm -f /dev/shm/fill /dev/shm/{name}", check=True)


def test_sysv_ipc_is_each_nodes_own(clusters: dict[str, dict[str, int]]) -> None:
    made = in_node(A, "compute0", "ipcmk -M 4096 && ipcs -m | grep -c cluser", check=True)
    assert made.stdout.split()[-1] == "1"
    assert in_node(A, "compute1", "ipcs -m | grep -c cluser").stdout.strip() == "0"
    host = subprocess.run(["ipcs", "-m"], capture_output=True, text=True).stdout
    assert f" {spec_uid(A)} " not in host


def _slurmd_pid(cluster: str, node: str) -> int:
    doc = status(cluster)
    entry = next(n for n in doc["nodes"] if n["name"] == node)
    pid = next(s["pid"] for s in entry["services"] if s["name"] == "slurmd")
    return int(pid or 0)  # 0 while it is being restarted


def test_fork_bomb_stops_at_pids_max_and_the_node_survives(
        clusters: dict[str, dict[str, int]]) -> None:
    assert cgroup_file(A, "compute1", "pids.max").read_text().strip() == str(PIDS_MAX)
    slurmd = _slurmd_pid(A, "compute1")
    uid = spec_uid(A)
    bomb = in_node(A, "compute1",
                   "i=0; while [ $i -lt 5000 ]; do sleep 300 </dev/null >/dev/null 2>&1 &\n"
                   "i=$((i+1)); done; echo all")
    try:
        assert bomb.returncode != 0 and "all" not in bomb.stdout  # fork failed: dash exits
        assert int(cgroup_file(A, "compute1", "pids.current").read_text()) <= PIDS_MAX
        events = cgroup_file(A, "compute1", "pids.events")
        if events.exists():
            assert int(events.read_text().split()[-1]) > 0
        assert subprocess.run(["true"]).returncode == 0  # the host still forks
        assert _slurmd_pid(A, "compute1") == slurmd
    finally:  # by ownership: the cluster user's processes in that node's cgroup
        for pid in node_procs(A, "compute1"):
            if uid_of(pid) == uid:
                os.kill(pid, signal.SIGKILL)
    assert wait_for(lambda: not any(uid_of(p) == uid for p in node_procs(A, "compute1")), 10)
    out = vhpc("-c", A, "exec", "slurm", "--user", "cluser", "--", "srun", "-w", "compute1",
               "hostname").stdout
    assert out.strip() == "compute1"


def test_one_clusters_user_cannot_signal_or_read_another_clusters(
        clusters: dict[str, dict[str, int]]) -> None:
    uid_a, uid_b = spec_uid(A), spec_uid(B)
    assert uid_a != uid_b
    host_ids = {int(line.split(":")[2]) for line in Path("/etc/passwd").read_text().splitlines()
                if line.count(":") >= 2}
    assert uid_a not in host_ids and uid_b not in host_ids
    job = vhpc("-c", B, "exec", "slurm", "--user", "cluser", "--", "sbatch", "--parsable",
               "-w", "compute0", "--wrap", "sleep 600").stdout.strip()
    victims: list[int] = []

    def job_started() -> bool:
        victims[:] = [p for p in node_procs(B, "compute0") if uid_of(p) == uid_b
                      and Path(f"/proc/{p}/cmdline").read_bytes() == b"sleep\x00600\x00"]
        return bool(victims)

    assert wait_for(job_started, 60), f"job {job} of {B} did not start"
    victim = victims[0]
    # From a node of A, B's job does not even exist (another PID namespace)...
    kill = in_node(A, "compute0", f"kill -9 {victim}")
    assert kill.returncode != 0
    # ...and with the pid in hand, A's user may not signal B's (another uid).
    assert "not permitted" in as_user(uid_a, "kill", "-9", str(victim)).stderr
    assert Path(f"/proc/{victim}").exists()
    # B's home and state directory are closed to A's user, read and write.
    home_b = STATE_ROOT / B / "home" / "cluser"
    for script in (f"cat {home_b}/.bashrc", f"ls {STATE_ROOT / B}", f"touch {home_b}/x"):
        result = in_node(A, "compute0", script)
        assert result.returncode != 0 and "Permission denied" in result.stderr, script
    vhpc("-c", B, "exec", "slurm", "--", "scancel", job)


def test_other_nodes_tmp_is_out_of_reach(clusters: dict[str, dict[str, int]]) -> None:
    in_node(A, "compute1", "echo mine > /tmp/hd-secret", check=True)
    assert in_node(A, "compute0", "test -e /tmp/hd-secret").returncode != 0
    result = in_node(A, "compute0", f"cat {STATE_ROOT / A / 'nodes/compute1/tmp/hd-secret'}")
    assert result.returncode != 0 and "Permission denied" in result.stderr
    in_node(A, "compute1", "rm /tmp/hd-secret", check=True)


def test_munge_and_the_state_directory_refuse_host_users(
        clusters: dict[str, dict[str, int]]) -> None:
    root = STATE_ROOT / A
    socket = root / "run" / "munge" / "munge.socket.2"
    uid_a, uid_b = spec_uid(A), spec_uid(B)
    assert as_user(uid_a, "munge", "-n", "-S", str(socket)).returncode == 0
    for stranger in (NOBODY, uid_b):
        assert as_user(stranger, "munge", "-n", "-S", str(socket)).returncode != 0
    # The reproduction: `sbatch` as nobody on the host was accepted. slurm.conf is
    # no secret: give nobody a copy, so that the munge socket is what refuses.
    with tempfile.NamedTemporaryFile("w", suffix=".conf") as conf:
        conf.write((root / "etc" / "slurm" / "slurm.conf").read_text())
        conf.flush()
        os.chmod(conf.name, 0o644)
        refused = as_user(NOBODY, "sbatch", "--wrap", "true", env={"SLURM_CONF": conf.name})
    assert refused.returncode != 0 and "Permission denied" in refused.stderr
    assert as_user(NOBODY, "ls", str(root)).returncode != 0

    def mode(p: Path) -> int:
        return stat.S_IMODE(p.stat().st_mode)

    assert (mode(root), root.stat().st_gid) == (0o750, uid_a)
    assert mode(root / "spec.json") == 0o600 and mode(root / "ledger.jsonl") == 0o600
    assert mode(root / "log") == 0o700 and mode(root / "observe") == 0o700
    assert mode(root / "home" / "cluser") == 0o700


def test_a_killed_slurmd_comes_back_inside_the_node(clusters: dict[str, dict[str, int]]) -> None:
    old = _slurmd_pid(B, "compute1")
    os.kill(old, signal.SIGKILL)
    assert wait_for(lambda: _slurmd_pid(B, "compute1") not in (old, 0), 30)
    new = _slurmd_pid(B, "compute1")
    nspid = next(line for line in Path(f"/proc/{new}/status").read_text().splitlines()
                 if line.startswith("NSpid:")).split()[1:]
    assert len(nspid) == 2 and nspid[0] == str(new)  # the host pid, and one in the node
    inside = in_node(B, "compute1", "ps -e -o pid=,comm=", user=None, check=True).stdout
    assert f"{nspid[1]} slurmd" in " ".join(inside.split())
    assert os.readlink(f"/proc/{new}/ns/pid") == os.readlink(
        f"/proc/{clusters[B]['compute1']}/ns/pid")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        node = next(n for n in status(B)["nodes"] if n["name"] == "compute1")
        if node["slurm_state"] == "idle":
            break
        time.sleep(0.5)
    out = vhpc("-c", B, "exec", "slurm", "--user", "cluser", "--", "srun", "-w", "compute1",
               "hostname").stdout
    assert out.strip() == "compute1"


def test_a_killed_init_ends_its_node_and_the_node_comes_back(
        clusters: dict[str, dict[str, int]]) -> None:
    init, slurmd = init_pids(B)["compute0"], _slurmd_pid(B, "compute0")
    os.kill(init, signal.SIGKILL)
    # the kernel ends every process of the PID namespace with its init...
    assert wait_for(lambda: not Path(f"/proc/{slurmd}").exists(), 10)
    # ...and the supervisor's restart gives the node a new namespace and init first
    assert wait_for(lambda: _slurmd_pid(B, "compute0") not in (slurmd, 0), 30)
    new_init = init_pids(B)["compute0"]
    assert new_init != init and Path(f"/proc/{new_init}").exists()
    assert os.readlink(f"/proc/{_slurmd_pid(B, 'compute0')}/ns/pid") == os.readlink(
        f"/proc/{new_init}/ns/pid")
    out = vhpc("-c", B, "exec", "slurm", "--user", "cluser", "--", "srun", "-w", "compute0",
               "hostname").stdout
    assert out.strip() == "compute0"


def test_a_stopped_node_has_no_processes_left_and_starts_with_a_new_init(
        clusters: dict[str, dict[str, int]]) -> None:
    old_init = init_pids(A)["compute1"]
    vhpc("-c", A, "node", "stop", "compute1")
    try:
        assert node_procs(A, "compute1") == []
        refused = in_node(A, "compute1", "true")
        assert refused.returncode == 2 and "is stopped" in refused.stderr
    finally:
        vhpc("-c", A, "node", "start", "compute1")
    assert init_pids(A)["compute1"] != old_init
    out = in_node(A, "compute1", "ps -e -o pid=,comm=", user=None, check=True).stdout
    assert out.split()[:2] == ["1", "sh"] and "slurmd" in out
