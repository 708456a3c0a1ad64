"""Accounting at boot: the db node's files, its daemons (mariadbd, then slurmdbd), and the
cluster's records in slurmdbd (cluster, QOS, accounts, users), all before slurmctld starts.

slurmctld asks slurmdbd for the associations when it starts; with
AccountingStorageEnforce=associations a job of a user slurmdbd does not know is refused,
so the records must exist first. The steps are serial by nature (0.2-0.3 s of a quiet
boot). A later boot of the same cluster copies a datadir that holds its records already
(made in the background after the first: services/registered_template.py) and skips the
registration; a boot takes the ready copy of its template when there is one
(services/spare_datadir.py).
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import time
from collections.abc import Callable
from pathlib import Path

from vhpc.atomic import write_atomic
from vhpc.cluster import image_clients, privacy
from vhpc.cluster.states import DaemonState
from vhpc.cluster.supervisor import Supervised
from vhpc.errors import BootError, UserError
from vhpc.runtime import images
from vhpc.runtime.listening import PortCheck
from vhpc.runtime.namespaces import NsPaths
from vhpc.services import (
    db_template,
    files,
    host_clients,
    image_db,
    mariadb,
    registered_template,
    slurmdbd,
    spare_datadir,
)
from vhpc.services.base import DaemonSpec
from vhpc.services.slurm_client import SlurmClient
from vhpc.spec.model import HOST_IMAGE, ClusterSpec, UserSpec
from vhpc.spec.paths import ClusterPaths

log = logging.getLogger(__name__)

MARIADB_TIMEOUT = 60.0
SLURMDBD_TIMEOUT = 60.0
_FAILED = (DaemonState.BACKOFF, DaemonState.FATAL, DaemonState.STOPPED)
#: daemons the boot waits for one after the other (slurmdbd needs MariaDB, slurmctld both)
WAITED = frozenset({"mariadbd", "slurmdbd"})


def prepare(spec: ClusterSpec, paths: ClusterPaths) -> Path | None:
    """The host-side client wrappers; my.cnf, slurmdbd.conf (0600, root) and the datadir
    copied from the template (an image cluster's: the image's clients and template); the
    host template the datadir came from (None: an image's, or no accounting)."""
    if spec.image == HOST_IMAGE:
        write_host_clients(paths)
    else:
        image_clients.write(spec, paths)
    node = slurmdbd.db_node(spec)
    if node is None:
        return None
    data = mariadb.datadir(paths)
    data.parent.mkdir(parents=True, exist_ok=True)
    data.parent.chmod(0o700)
    config = mariadb.render_config(data) if spec.image == HOST_IMAGE \
        else image_db.server_config(data)  # the image's server: services/image_db.py
    write_atomic(mariadb.config_file(paths), config, 0o600)
    write_atomic(slurmdbd.conf_file(paths), slurmdbd.render_slurmdbd_conf(spec, paths, node),
                 slurmdbd.CONF_MODE)
    os.chown(slurmdbd.conf_file(paths), 0, 0)
    source = copy_datadir(spec, data)
    mariadb.host_socket(paths, node.name).parent.mkdir(parents=True, exist_ok=True)
    return source


def copy_datadir(spec: ClusterSpec, data: Path) -> Path | None:
    """The cluster's datadir: a copy of its registered template (its records made by an
    earlier boot of the same cluster: services/registered_template.py), else of the base
    template (an image cluster's: always the image's); the host template it came from.
    A template's spare (services/spare_datadir.py) is taken instead of a copy."""
    if spec.image != HOST_IMAGE:
        mariadb.copy_template(images.image_dir(spec.image) / images.DB_TEMPLATE, data)
        return None
    base = db_template.ensure_template()
    registered = registered_template.lookup(base, slurmdbd.bootstrap_script(spec))
    if registered is not None:
        try:
            take_or_copy(registered, data)
            return registered
        except Exception as err:  # removed meanwhile (least recently used): the base
            log.warning("could not copy the registered template %s (%s): registering "
                        "the cluster instead", registered.name, err)
            shutil.rmtree(data, ignore_errors=True)
    take_or_copy(base, data)
    return base


def take_or_copy(template: Path, data: Path) -> None:
    """`data` from the template's spare (a rename), else from a copy of it."""
    data.parent.mkdir(parents=True, exist_ok=True)
    if spare_datadir.claim(template, data):
        log.info("accounting datadir: the spare of %s", template.name)
        return
    mariadb.copy_template(template, data)


def write_host_clients(paths: ClusterPaths) -> None:
    """Wrappers of the host's Slurm viewers that name the cluster's users (if nss_wrapper
    is installed; services/host_clients.py)."""
    library = host_clients.find_library()
    if library is None:
        return
    out = host_clients.wrapper_dir(paths)
    out.mkdir(parents=True, exist_ok=True)
    out.chmod(0o755)
    for program in host_clients.WRAPPED:
        real = shutil.which(program, path="/usr/local/bin:/usr/bin:/bin")
        if real is not None:
            write_atomic(out / program,
                         host_clients.render_wrapper(program, real, library, paths), 0o755)


def make_home(home: Path, uid: int) -> None:
    """A cluster user's home in the shared /home: the login files, theirs alone (0700)."""
    home.mkdir(parents=True, exist_ok=True)
    for name in (".bashrc", ".profile"):
        write_atomic(home / name, files.render_profile())
        os.chown(home / name, uid, uid)
    privacy.secure_home(home, uid, uid)


def daemons(spec: ClusterSpec, paths: ClusterPaths) -> list[DaemonSpec]:
    """mariadbd and slurmdbd on the db node, in start order ([] without accounting)."""
    node = slurmdbd.db_node(spec)
    if node is None:
        return []
    return [mariadb.daemon(paths, node.name), slurmdbd.daemon(paths, node.name)]


def wait_ready(spec: ClusterSpec, paths: ClusterPaths, client: SlurmClient,
               daemon: DaemonSpec, supervised: Supervised) -> None:
    """After a start: wait for mariadbd's socket; for slurmdbd's port, then register."""
    node = slurmdbd.db_node(spec)
    if node is None:
        return
    start = time.monotonic()
    if daemon.name == "mariadbd":
        sock = mariadb.host_socket(paths, node.name)
        _wait(lambda: mariadb.answers(sock), MARIADB_TIMEOUT, "MariaDB to answer",
              daemon, supervised)
        log.info("mariadbd answered in %.2fs", time.monotonic() - start)
    elif daemon.name == "slurmdbd":
        # slurmdbd opens its port only after its check of the database's tables
        address = (str(spec.ip_of(node)), slurmdbd.SLURMDBD_PORT)
        _wait(PortCheck(NsPaths.under(paths.ns_dir, node.name).net, slurmdbd.SLURMDBD_PORT,
                         lambda: _port_open(address)),
              SLURMDBD_TIMEOUT, "slurmdbd to answer", daemon, supervised)
        answered = time.monotonic()
        script = slurmdbd.bootstrap_script(spec)
        registered = registered_template.registered_from(mariadb.datadir(paths), script)
        if registered is not None:
            log.info("slurmdbd answered in %.2fs; cluster records from the registered "
                     "template %s", answered - start, registered)
            return
        run_sacctmgr(client, script, "registering the cluster")
        log.info("slurmdbd answered in %.2fs; cluster, QOS, accounts and users registered "
                 "in %.2fs", answered - start, time.monotonic() - answered)


def add_users(spec: ClusterSpec, client: SlurmClient, users: list[UserSpec]) -> None:
    """Accounts (when new) and associations of users added at run time."""
    if slurmdbd.db_node(spec) is not None and users:
        run_sacctmgr(client, slurmdbd.add_users_script(spec, users), "adding users")


def known_accounts(client: SlurmClient) -> set[str]:
    """Accounts slurmdbd knows (for `user add --account`)."""
    result = client.run(["sacctmgr", "-nP", "show", "account", "format=account"],
                        check=False, timeout=30)
    if result.returncode != 0:
        raise UserError(f"slurmdbd did not answer: {result.stderr.strip()[-200:]}",
                        fix="check 'vhpc logs --node db'")
    return {line.strip() for line in result.stdout.splitlines() if line.strip()}


def run_sacctmgr(client: SlurmClient, script: str, what: str) -> None:
    """Run sacctmgr commands (one a line) in one sacctmgr, from the host."""
    result = client.run(["sacctmgr", "-i"], check=False, timeout=60, input=script)
    out = (result.stdout + result.stderr).strip()
    if result.returncode != 0 and "Nothing new added" not in out:
        raise BootError(f"sacctmgr failed while {what}: {out[-400:]}")


def _port_open(address: tuple[str, int]) -> bool:
    """A TCP connection to `address` succeeds (slurmdbd logs nothing for an empty one)."""
    try:
        with socket.create_connection(address, timeout=1):
            return True
    except OSError:
        return False


def _wait(ready: Callable[[], bool], timeout: float, what: str, daemon: DaemonSpec,
          supervised: Supervised) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        if supervised.failures or supervised.state in _FAILED:
            raise BootError(f"{daemon.name} on node {daemon.node} exited while starting; "
                            f"last log lines: {tail(daemon.log_file)}")
        time.sleep(0.01)  # a socket's greeting, a netlink query: each well under 1 ms
    raise BootError(f"timed out after {timeout:.0f}s waiting for {what}; "
                    f"last log lines of {daemon.key}: {tail(daemon.log_file)}")


def tail(path: Path, lines: int = 3) -> str:
    """The last lines of a log, joined with ' | '."""
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(text[-lines:]) or "(empty log)"
