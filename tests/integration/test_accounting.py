"""Accounting, users and accounts (issue 9 items 1, 3, 6) against the real daemons.

A `db` node runs MariaDB and slurmdbd; right after `up` returns, sacct, sreport, sacctmgr,
sshare and sprio answer on the host (`vhpc env`) and in the nodes; jobs of users made with
`--users` and `user add` run under their accounts, a job with an unknown account or QOS
is refused with Slurm's own message, host-side squeue names the cluster's users, and
`down` leaves nothing (mariadbd and slurmdbd included). Bad input gets one line; a
MariaDB that cannot start rolls the whole boot back and shows its log's last lines.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.helpers import (
    STATE_ROOT,
    VHPC,
    break_db_template,
    leftovers,
    status,
    vhpc,
    wait_for,
)

pytestmark = pytest.mark.privileged

NAME = "hkacct"
SACCT_FIELDS = "JobID,User,Account,Elapsed,MaxRSS,State,ExitCode,NodeList"


def host_env(cluster: str) -> dict[str, str]:
    """The environment `eval "$(vhpc env)"` gives a host shell."""
    out = subprocess.run(["sh", "-c", f'eval "$({shlex.join(VHPC)} -c {cluster} env)" '
                          "&& env -0"], capture_output=True, check=True, text=True).stdout
    return dict(item.split("=", 1) for item in out.split("\0") if "=" in item)


def on_host(cluster: str, *argv: str) -> subprocess.CompletedProcess[str]:
    """A Slurm client run on the host as a user would after `eval "$(vhpc env)"`."""
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=60,
                          env=host_env(cluster))


def as_user(user: str, *argv: str, node: str = "slurm",
            cluster: str = NAME) -> subprocess.CompletedProcess[str]:
    """A command run in a node as a cluster user (not checked)."""
    return vhpc("-c", cluster, "exec", node, "--user", user, "--", *argv, check=False,
                timeout=120)


def daemon_pids(cluster: str) -> dict[str, int]:
    """pid of mariadbd and slurmdbd, from the db node's daemons in `status`."""
    node = next(n for n in status(cluster)["nodes"] if n["name"] == "db")
    return {d["name"]: int(d["pid"]) for d in node["services"]}


def alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def sacct_rows(cluster: str, job: str, where: str) -> list[dict[str, str]]:
    """sacct rows of a job (the job and its steps), from the host or the controller node."""
    argv = ["sacct", "-a", "-P", "-j", job, f"--format={SACCT_FIELDS}"]
    if where == "host":
        out = on_host(cluster, *argv)
    else:
        out = vhpc("-c", cluster, "exec", "slurm", "--", *argv, check=False)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    keys = lines[0].split("|")
    return [dict(zip(keys, line.split("|"), strict=True)) for line in lines[1:]]


def kib(size: str) -> float:
    """KiB of a size as sacct prints it (`24576K`, `30M`, `1.20G`)."""
    units = {"K": 1, "M": 1024, "G": 1024 ** 2}
    assert size and size[-1] in units, size
    return float(size[:-1]) * units[size[-1]]


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """Two compute nodes, users alice (physics) and bob (chem); nothing left after."""
    vhpc("-c", NAME, "clean", "--force", check=False)
    vhpc("-c", NAME, "up", "-n", "2", "--memory", "256M", "--users", "alice:physics,bob:chem")
    pids: dict[str, int] = {}
    try:
        pids = daemon_pids(NAME)
        yield NAME
    finally:
        vhpc("-c", NAME, "down", check=False)
    assert leftovers(NAME) == []
    assert set(pids) == {"mariadbd", "slurmdbd"}
    assert not any(alive(pid) for pid in pids.values()), pids


def test_sacct_shows_a_finished_job_from_the_host_and_from_a_node(cluster: str) -> None:
    job = as_user("alice", "sbatch", "--parsable", "-N1", "--wrap",
                  "python3 -c \"b = b'x' * (20 << 20); import time; time.sleep(8)\"")
    assert job.returncode == 0, job.stderr
    job_id = job.stdout.strip()

    def completed() -> bool:
        rows = sacct_rows(cluster, job_id, "host")
        return bool(rows) and rows[0]["State"] == "COMPLETED"

    assert wait_for(completed, 90), sacct_rows(cluster, job_id, "host")
    for where in ("host", "node"):
        rows = sacct_rows(cluster, job_id, where)
        top = rows[0]
        assert (top["User"], top["Account"], top["ExitCode"]) == ("alice", "physics", "0:0")
        assert top["NodeList"] in ("compute0", "compute1")
        assert top["Elapsed"] >= "00:00:08"
        batch = next(r for r in rows if r["JobID"].endswith(".batch"))
        assert kib(batch["MaxRSS"]) > 20 * 1024, batch  # sacct picks K or M (30M seen)


def test_reports_and_associations_answer_on_the_host_and_in_a_node(cluster: str) -> None:
    assoc = on_host(cluster, "sacctmgr", "-nP", "show", "assoc", "format=account,user,qos")
    assert assoc.returncode == 0, assoc.stderr
    rows = {tuple(line.split("|")[:2]): line.split("|")[2] for line in assoc.stdout.split()}
    assert {("physics", "alice"), ("chem", "bob"), ("default", "cluser")} <= set(rows)
    assert set(rows[("physics", "alice")].split(",")) == {"normal", "debug", "long"}
    qos = on_host(cluster, "sacctmgr", "-nP", "show", "qos", "format=name,maxwall")
    assert {"normal|", "debug|00:30:00", "long|7-00:00:00"} <= set(qos.stdout.split())
    # slurmdbd rolls usage up every hour: a new cluster's report has the header only
    for report in (on_host(cluster, "sreport", "-P", "cluster", "utilization"),
                   vhpc("-c", cluster, "exec", "compute1", "--", "sreport", "-P", "cluster",
                        "utilization")):
        assert report.returncode == 0, report.stderr
        assert "Cluster|Allocated|Down|PLND Down|Idle|Planned|Reported" in report.stdout
    share = on_host(cluster, "sshare", "-a", "-P")
    assert share.returncode == 0
    assert "alice" in [line.split("|")[1] for line in share.stdout.splitlines()[1:]]


def test_sprio_shows_the_factors_of_a_pending_job(cluster: str) -> None:
    busy = [as_user("bob", "sbatch", "--parsable", "-w", node, "--wrap", "sleep 60").stdout
            .strip() for node in ("compute0", "compute1")]
    try:
        def running() -> bool:
            out = on_host(cluster, "squeue", "-h", "-j", ",".join(busy), "-o", "%T")
            return out.stdout.split() == ["RUNNING", "RUNNING"]

        assert wait_for(running, 60)  # or the waiting job, of higher priority, goes first
        waiting = as_user("alice", "sbatch", "--parsable", "--qos", "debug", "--wrap",
                          "true").stdout.strip()
        assert waiting
        found: dict[str, list[str]] = {}

        def listed() -> bool:
            out = on_host(cluster, "sprio", "-h", "-o", "%i %Y %Q %F")
            found.update({ln.split()[0]: ln.split()[1:] for ln in out.stdout.splitlines()})
            return waiting in found

        assert wait_for(listed, 30)
        priority, qos, fairshare = (int(x) for x in found[waiting])
        assert qos == 10000  # the debug QOS: the highest, times PriorityWeightQOS
        assert fairshare > 0 and priority >= qos + fairshare
    finally:
        on_host(cluster, "scancel", *busy)


def test_a_job_with_an_unknown_account_or_qos_is_refused_with_slurms_message(
        cluster: str) -> None:
    bad = as_user("alice", "sbatch", "-A", "nosuch", "--wrap", "true")
    assert bad.returncode != 0
    assert "Invalid account or account/partition combination specified" in bad.stderr
    foreign = as_user("alice", "srun", "-A", "chem", "true")  # bob's account, not alice's
    assert foreign.returncode != 0 and "Invalid account" in foreign.stderr
    qos = as_user("bob", "sbatch", "--qos", "nosuch", "--wrap", "true")
    assert qos.returncode != 0 and "Invalid qos specification" in qos.stderr
    too_long = as_user("bob", "sbatch", "--qos", "debug", "-t", "2:00:00", "--wrap", "true")
    assert too_long.returncode != 0 and "Job violates accounting/QOS policy" in too_long.stderr


def test_users_run_jobs_under_their_own_accounts(cluster: str) -> None:
    for user, account in (("alice", "physics"), ("bob", "chem"), ("cluser", "default")):
        out = as_user(user, "srun", "-N1", "sh", "-c", "id -un; echo $SLURM_JOB_ACCOUNT")
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == [user, account]


def test_host_side_squeue_names_the_cluster_users(cluster: str) -> None:
    job = as_user("alice", "sbatch", "--parsable", "--wrap", "sleep 30").stdout.strip()
    try:
        out = on_host(cluster, "squeue", "-h", "-j", job, "-o", "%u")
        assert out.stdout.strip() == "alice", out.stdout + out.stderr
        plain = subprocess.run(["squeue", "-h", "-j", job, "-o", "%u"], capture_output=True,
                               text=True, env=dict(os.environ, SLURM_CONF=host_env(
                                   cluster)["SLURM_CONF"]))
        assert plain.stdout.strip() != "alice"  # what the wrapper fixes: the host's passwd
    finally:
        on_host(cluster, "scancel", job)


def test_user_add_at_run_time(cluster: str) -> None:
    added = vhpc("-c", cluster, "user", "add", "carol", "--account", "physics", "--json")
    user = json.loads(added.stdout)
    assert (user["name"], user["account"]) == ("carol", "physics")
    out = as_user("carol", "srun", "-N1", "sh", "-c", "id -un; echo $SLURM_JOB_ACCOUNT",
                  node="compute0")
    assert out.returncode == 0 and out.stdout.split() == ["carol", "physics"], out.stderr
    listed = json.loads(vhpc("-c", cluster, "user", "ls", "--json").stdout)
    assert [u["name"] for u in listed["users"]] == ["cluser", "alice", "bob", "carol"]
    assert listed["accounting"] is True

    again = vhpc("-c", cluster, "user", "add", "carol", "--account", "physics", check=False)
    assert again.returncode == 2 and again.stderr.count("\n") == 1
    assert "already exists" in again.stderr
    unknown = vhpc("-c", cluster, "user", "add", "dave", "--account", "nosuch", check=False)
    assert unknown.returncode == 2 and unknown.stderr.count("\n") == 1
    assert "account 'nosuch' does not exist" in unknown.stderr
    assert "dave:" not in (STATE_ROOT / cluster / "etc" / "passwd").read_text()
    assert as_user("dave", "true").returncode == 2  # not made


def test_without_accounting_the_cluster_is_lean() -> None:
    name = "hknoacct"
    vhpc("-c", name, "clean", "--force", check=False)
    vhpc("-c", name, "up", "-n", "1", "--memory", "256M", "--no-accounting")
    try:
        assert [n["name"] for n in status(name)["nodes"] if n["role"] == "db"] == []
        out = on_host(name, "sacct")
        assert "Slurm accounting storage is disabled" in out.stderr + out.stdout
        run = vhpc("-c", name, "exec", "slurm", "--user", "cluser", "--", "srun", "hostname")
        assert run.stdout.strip() == "compute0"
    finally:
        vhpc("-c", name, "down", check=False)
    assert leftovers(name) == []


def test_bad_users_get_one_line_and_nothing_is_made() -> None:
    name = "hkbadusers"
    for users, words in (("alice:", "give name:account pairs"),
                         ("alice:a,alice:b", "user 'alice' is given twice"),
                         ("Al!ce:x", "invalid user name 'Al!ce'")):
        out = vhpc("-c", name, "up", "-n", "1", "--users", users, check=False)
        assert out.returncode == 2, out.stderr
        assert out.stderr.count("\n") == 1 and words in out.stderr, out.stderr
        assert leftovers(name) == []


def test_a_mariadb_that_cannot_start_rolls_the_boot_back() -> None:
    """A broken template datadir (what a full disk or a bad upgrade leaves): mariadbd aborts,
    `up` fails with its last log lines, and nothing of the cluster is left."""
    root = Path(tempfile.mkdtemp(prefix="vhpc-hktest-", dir="/var/lib"))
    name = "hkbaddb"
    env = {"VHPC_STATE_ROOT": str(root)}
    try:
        break_db_template(root)
        out = vhpc("-c", name, "up", "-n", "1", check=False, user_env=env)
        assert out.returncode != 0
        assert "mariadbd" in out.stderr and "Aborting" in out.stderr, out.stderr
        assert not (root / name).exists()
        assert str(root / name) not in Path("/proc/self/mountinfo").read_text()
        assert not any(str(root / name) in p.read_text(errors="replace")
                       for p in Path("/proc").glob("[0-9]*/cmdline") if _readable(p))
    finally:
        vhpc("-c", name, "clean", "--force", check=False, user_env=env)
        shutil.rmtree(root, ignore_errors=True)


def _readable(path: Path) -> bool:
    try:
        path.read_bytes()
        return True
    except OSError:
        return False


def test_the_python_api_adds_users_and_submits_as_them(cluster: str) -> None:
    import vhpc

    with vhpc.Cluster.attach(cluster) as c:
        added = c.add_user("erin", "chem")
        assert (added.name, added.account) == ("erin", "chem")
        assert "erin" in [u.name for u in c.users()]
        result = c.wait(c.sbatch("#!/bin/sh\nid -un\n", user="erin"), timeout=120)
        assert result.state == "COMPLETED" and (result.stdout or "").strip() == "erin", result
        assert wait_for(lambda: sacct_rows(cluster, str(result.job_id), "host") != [], 30)
        rows = sacct_rows(cluster, str(result.job_id), "host")
        assert (rows[0]["User"], rows[0]["Account"]) == ("erin", "chem")
