"""MariaDB for accounting: its config (pure), its daemon, and the template datadir.

`mariadb-install-db` takes about a second and writes ~26 MB; doing it at every boot would
slow `vhpc up` and wear the disk. It runs once per MariaDB version into
`<state root>/.templates/mariadb-<version>`; each cluster copies that (reflinked where the
file system can) into its own state directory. The server listens only on the loopback of
the `db` node's network namespace and on a socket in the node's private /run: slurmdbd,
in the same node, is its only client.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path

from vhpc.errors import BootError
from vhpc.runtime import program_versions
from vhpc.runtime.facts import find_binary
from vhpc.runtime.hostops import run_command
from vhpc.services.base import RPC_PATH_NICE, DaemonSpec
from vhpc.spec.paths import ClusterPaths

PORT = 3306
#: where the server's socket is inside the db node (its private /run): Debian's default
#: client socket, so `mariadb` run in the node needs no option
NODE_SOCKET = "/run/mysqld/mysqld.sock"
DATABASE = "slurm_acct_db"


def datadir(paths: ClusterPaths) -> Path:
    """The cluster's MariaDB datadir (root's alone, under the state directory)."""
    return paths.root / "db" / "mysql"


def config_file(paths: ClusterPaths) -> Path:
    """The server's option file."""
    return paths.root / "db" / "mariadb.cnf"


def host_socket(paths: ClusterPaths, node: str) -> Path:
    """The server socket as the host sees it (the node's /run is a host directory)."""
    return paths.node_dir(node) / "run" / NODE_SOCKET.removeprefix("/run/")


def render_config(data: Path, socket_path: str = NODE_SOCKET,
                  pid_file: str = "/run/mysqld/mariadbd.pid") -> str:
    """A small-footprint server config: ~60 MB RSS instead of MariaDB's ~130 MB default."""
    return f"""# MariaDB option file written by vhpc (accounting database of one cluster)
[mariadbd]
user=root
datadir={data}
socket={socket_path}
pid-file={pid_file}
bind-address=127.0.0.1
port={PORT}
skip-name-resolve
performance_schema=OFF
innodb_buffer_pool_size=16M
innodb_log_file_size=2M
innodb_data_file_path=ibdata1:4M:autoextend
innodb_autoextend_increment=4
innodb_log_buffer_size=1M
key_buffer_size=1M
aria_pagecache_buffer_size=1M
max_connections=32
table_open_cache=256
innodb_lock_wait_timeout=900
# a virtual cluster's accounting: speed over durability across a host crash (every
# CREATE TABLE and commit of slurmdbd's would otherwise wait for fsync)
innodb_flush_log_at_trx_commit=0
innodb_doublewrite=0
innodb_file_per_table=OFF
innodb_fast_shutdown=2  # the datadir goes with the cluster: no flush at `down`
innodb_temp_data_file_path=ibtmp1:1M:autoextend  # not 12 MB written at every start
innodb_buffer_pool_load_at_startup=OFF
# buffered I/O: a cluster's datadir was just copied and sits in the page cache, which
# O_DIRECT (the default) bypassed to read it from disk again (~30 ms of each start, and
# of slurmdbd's first queries); loose-: MariaDB 11 deprecates the first for
# innodb_data_file_buffering, and an option it drops must not stop the server
loose-innodb_flush_method=fsync
loose-innodb_log_file_buffering=ON
innodb_buffer_pool_dump_at_shutdown=OFF
# no TLS on the db node's loopback: MariaDB 11.4+ (Debian 13) serves it unasked, and
# slurmdbd 24.11's client then fails its first query ("Number of columns in result (=1)
# set exceeds maximum allowed number of columns (=0)"); 10.11 takes the option as well
skip-ssl
log_warnings=1
"""


def daemon(paths: ClusterPaths, node: str) -> DaemonSpec:
    """mariadbd in the foreground in the db node; its error log goes to the console log."""
    argv = ("mariadbd", f"--defaults-file={config_file(paths)}")
    return DaemonSpec("mariadbd", node, argv, paths.daemon_log("mariadbd", node),
                      session_nice=RPC_PATH_NICE)


def server_version() -> str:
    """The installed server's version ('10.11.19'), from `mariadbd --version` (~30 ms),
    remembered while mariadbd is the same file (runtime/program_versions.py)."""
    path = find_binary("mariadbd")
    if path is None:
        raise BootError("mariadbd is not installed: install MariaDB with 'make install' "
                        "(Debian package mariadb-server) or use --no-accounting")
    return program_versions.remembered("mariadbd --version", path, lambda: _ask_version(path))


def _ask_version(path: str) -> str:
    """`mariadbd --version` of the server at `path`."""
    try:
        text = run_command([path, "--version"], timeout=30).stdout
    except Exception as err:  # CommandError: broken
        raise BootError(f"cannot run mariadbd ({err}): install MariaDB with "
                        "'make install' (Debian package mariadb-server) or use "
                        "--no-accounting") from err
    found = re.search(r"Ver\s+(\d+\.\d+\.\d+)", text)
    return found.group(1) if found else "unknown"


def copy_template(template: Path, data: Path) -> None:
    """Copy the template into the cluster (a reflink where the file system has them).

    The template's zeros are holes (made once, `make_sparse`), so the copy reads and
    writes its ~6 MB of data, not 21 MB (`--sparse=always` instead scanned every byte for
    zeros: 0.26-0.31 s of a 16-node boot on 2 busy cores, on the path to mariadbd)."""
    make_sparse(template)
    data.parent.mkdir(parents=True, exist_ok=True)
    run_command(["cp", "-a", "--reflink=auto", "--sparse=auto", str(template), str(data)],
                timeout=120)


#: files of a datadir worth punching holes into (InnoDB's system tablespace and redo log)
SPARSE_MIN_BYTES = 1 << 20


def make_sparse(template: Path) -> None:
    """Turn the zero blocks of a template's large files into holes, once (a marker beside
    it, named after its inode, records that); the contents stay the same for a copy
    running meanwhile."""
    marker = template.parent / f".{template.name}.{template.stat().st_ino}.sparse"
    if marker.exists():
        return
    for path in sorted(template.rglob("*")):
        if path.is_file() and not path.is_symlink() and \
                path.stat().st_size >= SPARSE_MIN_BYTES:
            run_command(["fallocate", "--dig-holes", str(path)], timeout=60)
    marker.touch()


def answers(sock: Path) -> bool:
    """True once the server accepts a connection on its socket and greets."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(2)
            conn.connect(str(sock))
            return bool(conn.recv(4))
    except OSError:
        return False
