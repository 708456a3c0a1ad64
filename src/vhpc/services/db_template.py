"""The accounting database template: made once per MariaDB and Slurm version, copied into
every cluster (reflinked where the file system can).

`mariadb-install-db` makes the system tables (~1 s), then slurmdbd, started once on the
template, creates its own schema (~2 s on a small machine): both would otherwise be paid
by every `vhpc up`. The template is made in a private network namespace (`unshare --net`)
so the throwaway mariadbd and slurmdbd listen on a loopback no one else sees.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shlex
import shutil
import tempfile
from pathlib import Path

from vhpc.atomic import write_atomic
from vhpc.errors import BootError
from vhpc.runtime import program_versions, spread_dirs
from vhpc.runtime.facts import find_binary
from vhpc.runtime.hostops import run_command
from vhpc.services import mariadb
from vhpc.spec.paths import state_root

TEMPLATE_TIMEOUT = 180.0


def slurm_version() -> str:
    """The installed slurmdbd's version ('22.05.8-4+deb12u3'), from dpkg (Slurm's own
    programs print theirs only with a configuration to read; ~10 ms), remembered while
    slurmdbd is the same file (runtime/program_versions.py)."""
    path = find_binary("slurmdbd")
    if path is None:
        raise BootError("slurmdbd is not installed: install it with 'make install' "
                        "(Debian package slurmdbd) or use --no-accounting")
    return program_versions.remembered("dpkg-query slurmdbd", path, _ask_dpkg)


def _ask_dpkg() -> str:
    """slurmdbd's package version, from dpkg."""
    try:
        text = run_command(["dpkg-query", "-W", "-f=${Version}", "slurmdbd"], timeout=30).stdout
    except Exception as err:  # CommandError: not installed
        raise BootError(f"slurmdbd is not installed ({err}): install it with 'make install' "
                        "(Debian package slurmdbd) or use --no-accounting") from err
    return re.sub(r"[^A-Za-z0-9.+~-]", "_", text.strip()) or "unknown"


@functools.cache
def versions() -> tuple[str, str]:
    """The installed MariaDB's and slurmdbd's versions, asked once per process (the
    manager asks at boot, and again for its registered template)."""
    return mariadb.server_version(), slurm_version()


#: the template builds' server options over the clusters' (mariadb.render_config): a
#: clean stop (a cluster's is `innodb_fast_shutdown=2`), so a copy starts without crash
#: recovery (~70-90 redo pages, 15-20 ms of every boot's MariaDB start)
TEMPLATE_EXTRA = ("# a template stops clean: its copies start without crash recovery\n"
                  "innodb_fast_shutdown=1\n")


def template_dir(mariadb_version: str, slurm: str) -> Path:
    """Where the datadir of these versions (and of this server config: InnoDB's file
    sizes must match the datadir) is kept."""
    config = mariadb.render_config(Path("/")) + TEMPLATE_EXTRA
    digest = hashlib.sha1(config.encode()).hexdigest()[:8]
    return state_root() / ".templates" / f"mariadb-{mariadb_version}-slurmdbd-{slurm}-{digest}"


def render_slurmdbd_conf(work: Path) -> str:
    """slurmdbd.conf of the throwaway slurmdbd that creates the schema."""
    return (f"# made by vhpc to create slurmdbd's schema in a template\n"
            f"AuthType=auth/munge\nAuthInfo=socket={work}/munge.socket.2\n"
            f"DbdAddr=127.0.0.1\nDbdHost=localhost\n"
            f"DbdPort=6819\nSlurmUser=root\nPidFile={work}/slurmdbd.pid\n"
            f"LogFile={work}/slurmdbd.log\nStorageType=accounting_storage/mysql\n"
            f"StorageHost=127.0.0.1\nStoragePort={mariadb.PORT}\nStorageUser=root\n"
            f"StorageLoc={mariadb.DATABASE}\n")


def daemon_lines(work: Path, timeout: int = 120, install: bool = True) -> str:
    """sh lines (run in new network and PID namespaces, `set -e`) starting the throwaway
    daemons on a private loopback: munged with a throwaway key (slurmdbd 23.11 and later
    make a credential when they start: Debian 13's 24.11 is fatal without munged; 22.05
    was not), the system tables (`install`: a new datadir), mariadbd and slurmdbd; their
    PIDs in $db and $dbd for `STOP_LINES`. A second loopback address: Slurm resolves
    addresses with AI_ADDRCONFIG, and glibc then finds no IPv4 in a namespace whose only
    address is 127.0.0.1 (slurmdbd could not listen, sacctmgr not connect)."""
    w = shlex.quote(str(work))
    ticks = timeout * 20
    install_line = (f"mariadb-install-db --defaults-file={w}/init.cnf "
                    f"--auth-root-authentication-method=normal \\\n"
                    f"    --skip-test-db >{w}/install.log 2>&1\n") if install else ""
    return f"""ip link set lo up
ip addr add 127.0.0.2/8 dev lo
dd if=/dev/urandom of={w}/munge.key bs=1024 count=1 2>/dev/null
chmod 400 {w}/munge.key
munged --force --key-file={w}/munge.key --socket={w}/munge.socket.2 \\
    --pid-file={w}/munged.pid --seed-file={w}/munged.seed --log-file={w}/munged.log
{install_line}mariadbd --defaults-file={w}/init.cnf >{w}/mariadbd.log 2>&1 & db=$!
i=0; until [ -S {w}/init.sock ]; do sleep 0.05; i=$((i+1)); [ $i -lt {ticks} ]; done
SLURM_CONF={w}/slurm.conf slurmdbd -D >{w}/slurmdbd.console 2>&1 & dbd=$!
i=0; until grep -q 'slurmdbd version .* started' {w}/slurmdbd.log 2>/dev/null; do
    sleep 0.05; i=$((i+1)); [ $i -lt {ticks} ]; done
"""


#: sh lines stopping the throwaway slurmdbd, then mariadbd (a clean InnoDB shutdown)
STOP_LINES = "kill $dbd; wait $dbd || true\nkill $db; wait $db || true\n"


def render_script(work: Path, timeout: int = 120) -> str:
    """sh run in new network and PID namespaces: system tables, server, slurmdbd's schema,
    stop."""
    return "set -e\n" + daemon_lines(work, timeout) + STOP_LINES


def write_work_files(work: Path) -> Path:
    """The throwaway server's config and slurmdbd.conf in `work`; the datadir's path
    (`work/data`, made by the caller: installed or copied)."""
    data = work / "data"
    write_atomic(work / "init.cnf", mariadb.render_config(
        data, str(work / "init.sock"), str(work / "init.pid")) + TEMPLATE_EXTRA)
    write_atomic(work / "slurmdbd.conf", render_slurmdbd_conf(work), 0o600)
    return data


def private_command(script: str) -> list[str]:
    """Run `script` in new network and PID namespaces: when it ends, fails or times out,
    its daemons end with it (they were left running when slurmdbd never came up)."""
    return ["unshare", "--net", "--pid", "--fork", "--kill-child", "--", "sh", "-c", script]


def ensure_template() -> Path:
    """The template datadir, made if missing (another boot may race: first wins)."""
    target = template_dir(*versions())
    target.parent.mkdir(parents=True, exist_ok=True)
    # the spares' copies (~240 files each boot) in block groups of their own
    spread_dirs.spread_subdirectories(target.parent)
    if (target / mariadb.DATABASE).is_dir():
        return target
    work = Path(tempfile.mkdtemp(prefix=".mariadb-", dir=target.parent))
    data = write_work_files(work)
    try:
        run_command(private_command(render_script(work)), timeout=TEMPLATE_TIMEOUT)
        if not (data / mariadb.DATABASE).is_dir():
            raise BootError(f"slurmdbd made no {mariadb.DATABASE} database")
        try:
            os.rename(data, target)
        except OSError:  # made meanwhile by another boot
            if not (target / mariadb.DATABASE).is_dir():
                raise
    except Exception as err:
        logs = work_logs(work)
        raise BootError(f"could not make the accounting database template {target}: "
                        f"{err}; logs: {logs}") from err
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


#: The logs a template build leaves in its work directory.
WORK_LOGS = ("install.log", "mariadbd.log", "slurmdbd.log")


def work_logs(work: Path) -> str:
    """What went wrong in a failed template build: one line of each of its logs."""
    return " | ".join(last_line(work / name) for name in WORK_LOGS)


def last_line(path: Path) -> str:
    """`name: line` of a log of the template's daemons: its last error line, else its last."""
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return f"{path.name}: (none)"
    words = ("error", "fatal", "failed", "cannot", "can't")
    errors = [ln for ln in lines if any(w in ln.lower() for w in words)]
    return f"{path.name}: {(errors or lines or ['(empty)'])[-1]}"
