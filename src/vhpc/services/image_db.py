"""The accounting database template of an image: made once at `vhpc image build` by the
image's own MariaDB and slurmdbd (services/db_template.py's script, run in a chroot of
the image, in private network, mount and PID namespaces), so a cluster of that image
copies a datadir its MariaDB and slurmdbd versions made."""

from __future__ import annotations

import os
import shlex
import shutil
from pathlib import Path

from vhpc.atomic import write_atomic
from vhpc.errors import BootError, CommandError
from vhpc.runtime.hostops import run_command
from vhpc.services import db_template, mariadb

#: What an image's MariaDB server adds to vhpc's config: MariaDB 11.4 and later serve
#: TLS unasked, and slurmdbd 24.11's client library then fails its first query ("Number of
#: columns in result (=1) set exceeds maximum allowed number of columns (=0)"); the
#: server listens on the db node's loopback only.
SERVER_EXTRA = "skip-ssl\n"

#: The work directory inside the image's tree while the template is made.
INSIDE = Path("/var/lib/vhpc-template")


def chroot_argv(root: Path, script: str) -> list[str]:
    """unshare + chroot command running `script` in the image with /dev and a /proc."""
    q = str(root)
    setup = (f"mount --rbind /dev {q}/dev && mount -t proc vhpc-proc {q}/proc && "
             f'exec chroot {q} /bin/sh -c "$1"')
    return ["unshare", "--net", "--mount", "--pid", "--fork", "--propagation", "private",
            "--", "/bin/sh", "-c", setup, "vhpc-template", script]


def server_config(data: Path, socket_path: str = mariadb.NODE_SOCKET,
                  pid_file: str = "/run/mysqld/mariadbd.pid") -> str:
    """vhpc's MariaDB config for an image's server (mariadb.render_config + SERVER_EXTRA)."""
    return mariadb.render_config(data, socket_path, pid_file) + SERVER_EXTRA


def munge_prologue(work: Path) -> str:
    """sh starting a throwaway munged with a throwaway key: slurmdbd 23.11 and later make
    a credential when they start (22.05 did not). It dies with the PID namespace."""
    w = shlex.quote(str(work))
    return (f"mkdir -p /run/munge\n"
            f"dd if=/dev/urandom of={w}/munge.key bs=1024 count=1 2>/dev/null\n"
            f"chmod 400 {w}/munge.key\n"
            f"munged --force --key-file={w}/munge.key --socket=/run/munge/munge.socket.2 "
            f"--pid-file={w}/munged.pid --seed-file={w}/munged.seed "
            f"--log-file={w}/munged.log\n")


def make_template(root: Path, dest: Path) -> None:
    """The datadir with the system tables and slurmdbd's schema, moved to `dest`."""
    work = root / INSIDE.relative_to("/")
    work.mkdir(parents=True, exist_ok=True)
    write_atomic(work / "init.cnf", server_config(
        INSIDE / "data", str(INSIDE / "init.sock"), str(INSIDE / "init.pid")))
    write_atomic(work / "slurmdbd.conf", db_template.render_slurmdbd_conf(INSIDE), 0o600)
    try:
        run_command(chroot_argv(root, munge_prologue(INSIDE)
                                + db_template.render_script(INSIDE)),
                    timeout=db_template.TEMPLATE_TIMEOUT)
        if not (work / "data" / mariadb.DATABASE).is_dir():
            raise BootError(f"slurmdbd made no {mariadb.DATABASE} database")
        os.rename(work / "data", dest)
    except (CommandError, BootError, OSError) as err:
        logs = db_template.work_logs(work)
        raise BootError(f"image build failed: the accounting template "
                        f"(exit {getattr(err, 'returncode', '?')}): {logs}") from err
    finally:
        shutil.rmtree(work, ignore_errors=True)


