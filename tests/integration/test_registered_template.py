"""Registered accounting datadirs (services/registered_template.py) with real daemons: after
a first boot the manager makes, in the background, a datadir that holds the cluster's
records, then a spare copy of it (services/spare_datadir.py); the next boot of the same
cluster takes the spare and skips the registration, and accounting works as before
(associations, a job as cluser, sacct). `down` while the
build runs ends it: no process, work directory or cluster state is left.

Each run registers a user of its own, so its datadir is new (the first boot takes the
slow path) and is removed at the end (the shared cache is not filled by tests).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.helpers import VHPC, leftovers, vhpc, wait_for, wait_until
from vhpc.services import db_template, mariadb, registered_template, slurmdbd, spare_datadir
from vhpc.spec.model import ClusterSpec
from vhpc.spec.paths import ClusterPaths

pytestmark = pytest.mark.privileged

COLD = "cluster, QOS, accounts and users registered"
WARM = "cluster records from the registered template"


def registered_of(name: str) -> Path:
    """Where the registered datadir of a booted cluster's spec goes."""
    spec = ClusterSpec.from_dict(json.loads(ClusterPaths.of(name).spec.read_text()))
    base = db_template.template_dir(mariadb.server_version(), db_template.slurm_version())
    return registered_template.registered_dir(base, slurmdbd.bootstrap_script(spec))


def work_dirs(name: str) -> list[str]:
    """Build work directories of this cluster under the templates' directory."""
    root = ClusterPaths.of(name).root.parent / ".templates"
    return sorted(p.name for p in root.glob(f".registering-{name}-*"))


def build_processes(name: str) -> list[str]:
    """Processes whose command line names one of this cluster's build work directories."""
    found = []
    needle = f"/.registering-{name}-".encode()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            try:
                if needle in (proc / "cmdline").read_bytes():
                    found.append(proc.name)
            except OSError:
                continue
    return found


def nothing_left(name: str) -> list[str]:
    """leftovers() and the build's own: work directories and processes."""
    return leftovers(name) + work_dirs(name) + build_processes(name)


def manager_log(name: str) -> str:
    return ClusterPaths.of(name).manager_log.read_text()


@pytest.fixture
def users() -> Iterator[str]:
    """A user of this run's own (a new registered datadir)."""
    yield f"r{os.getpid()}:rtacct"


def test_a_second_boot_copies_the_registered_datadir_and_skips_the_registration(
        users: str) -> None:
    name = "rt-reg"
    vhpc("-c", name, "clean", "--force", check=False)
    up = ("-c", name, "up", "-n", "2", "--memory", "256M", "--users", users)
    vhpc(*up)
    target = registered_of(name)
    try:
        assert COLD in manager_log(name) and WARM not in manager_log(name)
        wait_until(lambda: (target / registered_template.MARKER).is_file(), 180,
                   f"the background build of {target}")
        spare = spare_datadir.spare_of(target)  # made next, by the same thread
        wait_until(spare.is_dir, 60, f"the spare {spare}")
        vhpc("-c", name, "down")
        assert nothing_left(name) == []
        vhpc(*up)
        log = manager_log(name)
        assert f"{WARM} {target.name}" in log and COLD not in log, log[-2000:]
        assert f"the spare of {target.name}" in log, log[-2000:]  # taken, not copied
        assoc = subprocess.run(["sh", "-c", f'eval "$({shlex.join(VHPC)} -c {name} env)" && '
                                "sacctmgr -nP show assoc format=cluster,account,user"],
                               capture_output=True, text=True, timeout=60)
        assert assoc.returncode == 0, assoc.stderr
        rows = set(assoc.stdout.split())
        user = users.split(":")[0]
        assert {f"{name}|default|cluser", f"{name}|rtacct|{user}"} <= rows, assoc.stdout
        job = vhpc("-c", name, "exec", "slurm", "--user", "cluser", "--",
                   "srun", "-N2", "hostname", timeout=120)
        assert sorted(job.stdout.split()) == ["compute0", "compute1"]

        def recorded() -> bool:
            out = vhpc("-c", name, "exec", "slurm", "--", "sacct", "-a", "-nP", "-X",
                       "--format=User,State,NNodes", check=False).stdout
            return "cluser|COMPLETED|2" in out

        assert wait_for(recorded, 90), "sacct never showed the job"
    finally:
        vhpc("-c", name, "down", check=False)
        shutil.rmtree(target, ignore_errors=True)
        spare_datadir.remove(target)
    assert nothing_left(name) == []


def test_down_while_the_build_runs_ends_it_and_leaves_nothing(users: str) -> None:
    name = "rt-regdown"
    vhpc("-c", name, "clean", "--force", check=False)
    vhpc("-c", name, "up", "-n", "2", "--memory", "256M", "--users", users)
    target = registered_of(name)
    try:
        assert wait_for(lambda: bool(work_dirs(name)), 30), "no build started"
        assert not target.exists()  # it runs: a few seconds at idle priority
    finally:
        vhpc("-c", name, "down", check=False)
    try:
        assert nothing_left(name) == []
        assert not target.exists()  # ended before its rename
    finally:
        shutil.rmtree(target, ignore_errors=True)
