"""Registered accounting datadirs: the base template (services/db_template.py) with one
cluster's records (cluster, QOS, accounts, users) already in it, so that a later boot of
the same cluster copies it and skips the registration (one `sacctmgr -i` run, 0.2-0.35 s
on the boot's path to slurmctld).

Key: the base template's name (MariaDB and slurmdbd versions, server config) and a hash
of the exact bootstrap script (`slurmdbd.bootstrap_script`: cluster name, default user,
users, accounts, QOS); kept as `registered-<key>` beside the base template. At most
MAX_KEPT are kept (~21 MB each): making one removes the least recently used beyond that
(a boot that copies one marks it used). A datadir copied from one holds MARKER, which
tells `accounting.wait_ready` that the records are there.

One is made in the background after a boot that registered the slow way (the manager,
once `up` has returned), at idle CPU and I/O priority: a copy of the base template, a
throwaway munged + mariadbd + slurmdbd in private network and PID namespaces (as for the
base template), `sacctmgr -i` with the same script, a clean stop, then an atomic rename
(first wins). A failed build leaves nothing and logs one warning; `stop_builds` (the
manager's exit, `down` included) kills one that still runs and removes its work dir. A
killed manager's build dies with it (parent-death signals); its work directory is
removed by the next build (`remove_stale`).

The same background thread first makes a spare of the template the boot copied, and
after a build one of the new datadir (services/spare_datadir.py): the next boot takes it
with a rename.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import logging
import os
import shlex
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

from vhpc.atomic import write_atomic
from vhpc.services import db_template, mariadb, owned_work, slurmdbd, spare_datadir
from vhpc.spec.model import HOST_IMAGE, ClusterSpec

log = logging.getLogger(__name__)

MAX_KEPT = 8
MARKER = "vhpc-registered"
BUILD_TIMEOUT = 180.0
STOP_TIMEOUT = 10.0
#: the logs a failed build names (one line each), the likeliest cause first
BUILD_LOGS = ("sacctmgr.log", "slurmdbd.log", "mariadbd.log")
#: the build's processes: idle CPU and I/O class, killed if the manager's thread dies
LOW_PRIORITY = ("setpriv", "--pdeathsig", "KILL", "--", "ionice", "-c", "3",
                "nice", "-n", "19", "chrt", "--idle", "0")
#: a spare's copy (~30 ms of CPU): at the default priority, so that it is done before a
#: `down` that comes right after `up` (at idle priority it starved behind the work that
#: follows a boot, and `down` ended it: a script's up/down loop never had a spare)
SPARE_PRIORITY = ("setpriv", "--pdeathsig", "KILL", "--")
#: how long `down` lets a spare's copy finish before it ends it
SPARE_WAIT = 2.0


def script_digest(script: str) -> str:
    """A short hash of a bootstrap script's exact text."""
    return hashlib.sha1(script.encode()).hexdigest()[:16]


def registered_dir(base: Path, script: str) -> Path:
    """Where the datadir of this base template with this script's records is kept."""
    key = hashlib.sha1(f"{base.name}\n{script}".encode()).hexdigest()[:16]
    return base.parent / f"registered-{key}"


def marker_text(base: Path, script: str) -> str:
    """MARKER's content: the registered template's name and the script's hash."""
    return f"{registered_dir(base, script).name} {script_digest(script)}\n"


def lookup(base: Path, script: str) -> Path | None:
    """The registered datadir for this script, if made (marked as just used)."""
    target = registered_dir(base, script)
    if not (target / MARKER).is_file():
        return None
    with contextlib.suppress(OSError):
        os.utime(target)  # the least recently used are removed first
    return target


def registered_from(data: Path, script: str) -> str | None:
    """The registered template a cluster's datadir was copied from, if it holds this
    script's records (else None: the records must be registered)."""
    try:
        name, digest = (data / MARKER).read_text().split()
    except (OSError, ValueError):
        return None
    return name if digest == script_digest(script) else None


def prune(root: Path, keep: int = MAX_KEPT) -> list[Path]:
    """Remove the least recently used registered datadirs beyond `keep`; the removed."""
    def used(path: Path) -> float:
        try:
            return path.stat().st_mtime
        except OSError:
            return 0.0

    removed: list[Path] = []
    for old in sorted(root.glob("registered-*"), key=used, reverse=True)[keep:]:
        trash = root / f".trash-{old.name}-{os.getpid()}"
        try:
            os.rename(old, trash)  # gone for lookups at once
        except OSError:
            continue
        shutil.rmtree(trash, ignore_errors=True)
        spare_datadir.remove(old)
        for marker in root.glob(f".{old.name}.*.sparse"):  # mariadb.make_sparse's
            marker.unlink(missing_ok=True)
        removed.append(old)
    return removed


def remove_stale(root: Path, now: float | None = None) -> list[Path]:
    """Remove the work directories of builds whose manager died (killed: its build died
    with it) or older than a build can run, and prune's leftovers; the removed."""
    now = time.time() if now is None else now
    removed: list[Path] = []
    for work in [*root.glob(".registering-*"), *root.glob(".trash-registered-*")]:
        if owned_work.is_stale(work, BUILD_TIMEOUT + 60, now):
            shutil.rmtree(work, ignore_errors=True)
            removed.append(work)
    for marker in root.glob(".*.sparse"):  # mariadb.make_sparse's, of a template gone
        if not (root / marker.name[1:].rsplit(".", 2)[0]).is_dir():
            marker.unlink(missing_ok=True)
            removed.append(marker)
    return removed


def render_slurm_conf(cluster: str, work: Path) -> str:
    """slurm.conf of the build's sacctmgr: the throwaway slurmdbd and munge socket."""
    sock = work / "munge.socket.2"
    return (f"# made by vhpc to register cluster {cluster} in a template\n"
            f"ClusterName={cluster}\nSlurmctldHost=localhost\n"
            f"AuthType=auth/munge\nAuthInfo=socket={sock}\n"
            f"AccountingStorageType=accounting_storage/slurmdbd\n"
            f"AccountingStorageHost=127.0.0.1\n"
            f"AccountingStoragePort={slurmdbd.SLURMDBD_PORT}\n"
            f"AccountingStoragePass={sock}\n")


def render_script(base: Path, work: Path, timeout: int = 120) -> str:
    """sh run in new network and PID namespaces: copy the base template, start the
    daemons on it, register with the script in work/bootstrap.sacctmgr, stop."""
    w = shlex.quote(str(work))
    return (f"set -e\ncp -a --reflink=auto --sparse=always {shlex.quote(str(base))} "
            f"{w}/data\n" + db_template.daemon_lines(work, timeout, install=False)
            + f"SLURM_CONF={w}/slurm.conf sacctmgr -i <{w}/bootstrap.sacctmgr "
              f">{w}/sacctmgr.log 2>&1\n" + db_template.STOP_LINES)


class Build:
    """One background build of a registered datadir, in a thread of the manager; before
    it, a spare of the template the boot copied (`source`), after it one of the new
    registered datadir (services/spare_datadir.py)."""

    def __init__(self, spec: ClusterSpec, source: Path | None = None) -> None:
        self.cluster = spec.name
        self.source = source
        self.script = slurmdbd.bootstrap_script(spec)
        self.work: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.copying_spare = False  # the process is a spare's copy
        self.stopping = False
        self._lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, name="registered-template",
                                       daemon=True)

    def _run(self) -> None:
        start = time.monotonic()
        try:
            base = db_template.template_dir(*db_template.versions())
            remove_stale(base.parent)
            spare_datadir.remove_stale(base.parent)
            if self.source is not None:
                self._refill(self.source)
            made = self._build(base)
            if self.work is not None:  # the build's own: the spare's comes next
                shutil.rmtree(self.work, ignore_errors=True)
                self.work = None
            if made is not None:
                log.info("registered accounting template %s made in %.1fs (cluster %s)",
                         made.name, time.monotonic() - start, self.cluster)
                self._refill(made)
        except Exception as err:  # never the boot's failure: the next boot registers
            if not self.stopping:
                log.warning("could not make the registered accounting template (or a "
                            "spare) of cluster %s: %s", self.cluster, err)
        finally:
            if self.work is not None:
                shutil.rmtree(self.work, ignore_errors=True)

    def _refill(self, template: Path) -> None:
        """A spare copy of `template` for the next boot, unless there is one."""
        if self.stopping or not spare_datadir.wanted(template):
            return
        mariadb.make_sparse(template)
        with self._lock:
            if self.stopping:
                return
            self.work, copy = spare_datadir.start_work(template)
            self.process = subprocess.Popen(
                [*SPARE_PRIORITY, *spare_datadir.copy_command(template, copy)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                start_new_session=True)
            self.copying_spare = True
        try:
            _, err = self.process.communicate(timeout=BUILD_TIMEOUT)
        except subprocess.TimeoutExpired:
            self._kill()
            raise RuntimeError(f"spare copy timed out after {BUILD_TIMEOUT:.0f}s") from None
        finally:
            self.copying_spare = False
        if self.process.returncode == 0:  # a whole copy, even if `down` came meanwhile
            if spare_datadir.install(template, copy):
                log.info("spare accounting datadir of %s made", template.name)
        elif not self.stopping:
            raise RuntimeError(f"spare copy of {template.name}: exit "
                               f"{self.process.returncode} "
                               f"({err.decode(errors='replace').strip()[-200:]})")
        shutil.rmtree(self.work, ignore_errors=True)
        self.work = None

    def _build(self, base: Path) -> Path | None:
        target = registered_dir(base, self.script)
        if not (base / mariadb.DATABASE).is_dir() or (target / MARKER).is_file():
            return None  # no base template (the boot made it), or made meanwhile
        with self._lock:
            if self.stopping:
                return None
            self.work = owned_work.make(base.parent, f".registering-{self.cluster}-")
            data = db_template.write_work_files(self.work)
            write_atomic(self.work / "slurm.conf", render_slurm_conf(self.cluster, self.work))
            write_atomic(self.work / "bootstrap.sacctmgr", self.script, 0o600)
            # a session of its own: the manager's is weighted (runtime/priority.py), and
            # an autogroup competes with its weight whatever its tasks' policy
            self.process = subprocess.Popen(
                [*LOW_PRIORITY, *db_template.private_command(render_script(base, self.work))],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                start_new_session=True)
        try:
            _, err = self.process.communicate(timeout=BUILD_TIMEOUT)
        except subprocess.TimeoutExpired:
            self._kill()
            raise RuntimeError(f"timed out after {BUILD_TIMEOUT:.0f}s") from None
        if self.stopping:
            return None
        if self.process.returncode != 0 or not (data / mariadb.DATABASE).is_dir():
            raise RuntimeError(f"exit {self.process.returncode} "
                               f"({err.decode(errors='replace').strip()[-200:]}); logs: "
                               + " | ".join(db_template.last_line(self.work / name)
                                            for name in BUILD_LOGS))
        write_atomic(data / MARKER, marker_text(base, self.script))
        try:
            os.rename(data, target)
        except OSError:  # made meanwhile by another cluster's build: first wins
            if not (target / MARKER).is_file():
                raise
            return None
        prune(base.parent)
        return target

    def _kill(self) -> None:
        """End the private namespaces: their init (the script's sh) with SIGKILL takes
        every daemon in them; unshare ends once they are reaped."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
        try:
            inits = [int(pid) for pid in children.read_text().split()]
        except (OSError, ValueError):
            inits = []
        for pid in inits:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        try:  # not forked yet: unshare itself (a child it forks meanwhile gets SIGKILL)
            process.wait(timeout=STOP_TIMEOUT if inits else 0)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def stop(self) -> None:
        """End the build if it still runs (a spare's copy may finish first, for
        SPARE_WAIT); its work directory removed."""
        with self._lock:
            self.stopping = True
            spare_copy = self.process if self.copying_spare else None
        if spare_copy is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                spare_copy.wait(timeout=SPARE_WAIT)
        self._kill()
        self.thread.join(STOP_TIMEOUT)
        if self.work is not None:
            shutil.rmtree(self.work, ignore_errors=True)


_builds: list[Build] = []


def start_build(spec: ClusterSpec, source: Path | None = None) -> Build | None:
    """After a boot: make this cluster's registered datadir in the background (nothing
    when it is made already), and the spares of `source` (the template the boot copied)
    and of the new datadir; unless the cluster has no accounting or runs an image (not
    supported: its datadir comes from the image's own template)."""
    if spec.image != HOST_IMAGE or slurmdbd.db_node(spec) is None:
        return None
    build = Build(spec, source)
    if not _builds:
        atexit.register(stop_builds)  # an exit other than the manager's usual ones
    _builds.append(build)
    build.thread.start()
    return build


def stop_builds() -> None:
    """End every build this process started (the manager's exit, `down` included)."""
    while _builds:
        _builds.pop().stop()
