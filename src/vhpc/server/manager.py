"""The long-lived manager of one cluster: boots or adopts it, supervises, serves the API.

The composition root: it builds the Cluster, then (once it is up) the Inventory, the
Observer, the ClusterAPI and the web app, and owns their threads. During boot it serves
nothing. Started detached by `vhpc up` (mode `boot`, spec JSON on stdin) or by any command
that finds it gone (mode `adopt`). While booting it reports JSON lines on stdout to the
process that started it, then detaches from that pipe. Daemons are not its children
in any way that matters: killing the manager leaves the cluster running.

    python -m vhpc.server.manager boot|adopt CLUSTER
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vhpc.atomic import write_atomic
from vhpc.cluster.cluster import Cluster
from vhpc.cluster.ledger import Kind
from vhpc.cluster.teardown import MANAGER_KEY
from vhpc.errors import VhpcError
from vhpc.runtime.linux import LinuxRuntime
from vhpc.runtime.priority import raise_session_share
from vhpc.runtime.proc import record_of
from vhpc.services import registered_template
from vhpc.spec.model import ClusterSpec
from vhpc.spec.paths import ClusterPaths

if TYPE_CHECKING:
    import uvicorn
    from fastapi import FastAPI

    from vhpc.api import ClusterAPI
    from vhpc.cluster.inventory import Inventory
    from vhpc.web.listen import TcpAccess

# What is only needed once the cluster is up (FastAPI, uvicorn, etcd client, observe):
# imported in a thread once the nodes are idle, beside the registry's fill.
SERVER_MODULES = ("uvicorn", "vhpc.api", "vhpc.cluster.inventory", "vhpc.server.observing",
                  "vhpc.web.app")


def _import_server_modules() -> None:
    import importlib

    for name in SERVER_MODULES:
        importlib.import_module(name)

log = logging.getLogger("vhpc.manager")


class Reporter:
    """JSON lines to whoever started the manager, until it detaches."""

    def __init__(self) -> None:
        self.attached = True

    def send(self, **message: Any) -> None:
        if not self.attached:
            return
        try:
            sys.stdout.write(json.dumps(message) + "\n")
            sys.stdout.flush()
        except (BrokenPipeError, OSError):
            self.attached = False

    def detach(self, log_file: Path) -> None:
        """Point stdout/stderr at the log file; the starter sees EOF."""
        self.attached = False
        fd = os.open(log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        os.close(devnull)


class BootLines(logging.Handler):
    """Keeps the boot's lines (logged before the state directory exists or is known to
    survive) so that manager.log gets them once the boot succeeded."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


_boot_lines = BootLines()


def _setup_logging(log_file: Path | None) -> None:
    """Log to stderr (while `up` follows the boot), or to the manager's log file; the
    boot's lines kept so far go to that file first."""
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handler: logging.Handler = (logging.FileHandler(log_file) if log_file
                                else logging.StreamHandler(sys.stderr))
    handler.setFormatter(fmt)
    if log_file is None:
        root.handlers = [handler, _boot_lines]
        return
    for record in _boot_lines.records:
        handler.handle(record)
    _boot_lines.records.clear()
    root.handlers = [handler]


def _listen_sockets(paths: ClusterPaths, dashboard_port: int,
                    host: str = "127.0.0.1") -> tuple[list[socket.socket], int]:
    """The unix socket (0600) and the TCP socket of the dashboard; the TCP port."""
    sock_path = paths.manager_socket
    sock_path.unlink(missing_ok=True)
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix.bind(str(sock_path))
    os.chmod(sock_path, 0o600)
    unix.listen(128)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY on accepted connections only
    # then; without it a keep-alive client waits 40 ms (delayed ACK) for every response.
    tcp = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind((host, dashboard_port))
    tcp.listen(128)
    port = tcp.getsockname()[1]
    write_atomic(paths.run / "dashboard.port", f"{port}\n")
    return [unix, tcp], port


class InventoryStarter:
    """Starts the inventory in a thread once the boot's nodes are idle (etcd's start and
    wait, the registry's writes), beside the manager's own work after `up` returned."""

    def __init__(self, start: Callable[[], Inventory], nodes_idle: threading.Event) -> None:
        self._start = start
        self._nodes_idle = nodes_idle
        self._done = threading.Event()
        self._inventory: Inventory | None = None
        self._error: BaseException | None = None
        threading.Thread(target=self._run, name="inventory-start", daemon=True).start()

    def _run(self) -> None:
        self._nodes_idle.wait()  # never set if the boot fails first: the thread just waits
        try:
            self._inventory = self._start()
        except BaseException as err:  # handed to the manager's thread by result()
            self._error = err
        finally:
            self._done.set()

    def result(self) -> Inventory:
        """The started inventory (after a successful boot), or what its start raised."""
        self._done.wait()
        if self._error is not None:
            raise self._error
        assert self._inventory is not None
        return self._inventory


class Manager:
    """Owns the Cluster object, the API server and the boot/adopt sequence."""

    def __init__(self, mode: str, spec: ClusterSpec, reporter: Reporter) -> None:
        self.mode = mode
        self.paths = ClusterPaths.of(spec.name)
        self.reporter = reporter
        self.cluster = Cluster(spec, self.paths, LinuxRuntime(), progress=self._progress)
        self.server: uvicorn.Server | None = None
        self.access: TcpAccess | None = None  # the TCP guard, made with the sockets
        self.exit_code = 0

    def _progress(self, message: str, done: int, total: int) -> None:
        self.reporter.send(progress=message, done=done, total=total)

    def _record_self(self) -> None:
        record = record_of(os.getpid())
        assert record is not None
        self.cluster.ledger.add(Kind.PROCESS, MANAGER_KEY, "", **record.to_dict())
        write_atomic(self.paths.manager_pid, f"{os.getpid()}\n")

    def _dashboard_port(self) -> int:
        """VHPC_DASHBOARD_PORT, else the port of a previous manager (stable URL), else any."""
        if "VHPC_DASHBOARD_PORT" in os.environ:
            return int(os.environ["VHPC_DASHBOARD_PORT"])
        saved = self.paths.run / "dashboard.port"
        if saved.exists():
            port = int(saved.read_text().strip() or 0)
            with socket.socket() as probe:
                try:
                    probe.bind(("127.0.0.1", port))
                    return port
                except OSError:
                    pass
        return 0

    def _stop_server(self) -> None:
        if self.server is not None:
            self.server.should_exit = True

    def run(self) -> int:
        """Boot or adopt (in this thread, so a signal can cancel it), then serve."""
        # Not while the boot runs: on 2 cores its ~0.4 s of CPU slowed the boot by about as
        # much; after it, the imports overlap the registry's fill (the wait for `ready`)
        warm = threading.Thread(target=_import_server_modules, name="imports", daemon=True)
        early = InventoryStarter(self._start_inventory, self.cluster.nodes_idle) \
            if self.mode == "boot" else None
        try:
            if self.mode == "boot":
                self.cluster.boot()
            else:
                self.cluster.adopt()
        except (VhpcError, OSError) as err:
            self.reporter.send(error=str(err))
            log.error("%s failed: %s", self.mode, err)
            return 1
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        warm.start()
        # The nodes are idle. The API's sockets listen from here, so a command that comes
        # before the API is composed waits in their backlog instead of failing.
        sockets, url = self._listen()
        self._record_self()
        # `up` returns here, with the nodes idle: jobs need neither etcd nor the API. etcd's
        # start and the registry's fill (the inventory thread) and the API's composition
        # come after; a command sent meanwhile waits in the sockets' backlog.
        _setup_logging(self.paths.manager_log)
        self.reporter.send(ready=True, dashboard=url)
        self.reporter.detach(self.paths.manager_log)
        # It supervises and answers (`down` included) while jobs may saturate the host: a
        # step across 1024 nodes runs ~2000 sessions, and at the default weight the API
        # took 4.5 s to take `down`'s request (runtime/priority.py)
        log.info("a larger CPU share for this manager: %s", raise_session_share())
        if self.mode == "boot":  # its accounting records, for its next boot (idle priority)
            registered_template.start_build(self.cluster.spec, self.cluster.datadir_source())
        try:
            inventory = early.result() if early is not None else self._start_inventory()
        except Exception as err:  # the cluster runs; any command starts a new manager
            return self._fail_after_boot(err)
        warm.join()
        try:
            api, app = self._compose(inventory, url)
        except Exception as err:
            return self._fail_after_boot(err)
        log.info("cluster %s ready; API on %s, dashboard %s", self.cluster.spec.name,
                 self.paths.manager_socket, url.split("?")[0])
        import asyncio  # ~20 ms: not before the boot

        asyncio.run(self.serve(app, sockets))
        registered_template.stop_builds()  # before `down` returns: nothing left behind
        from vhpc.models import Phase

        api.stop_observer()
        if api.phase is Phase.STOPPING:  # torn down; `down` waits for this process to end:
            logging.shutdown()  # no interpreter teardown of 1024 nodes' objects and threads
            os._exit(self.exit_code)  # (0.6-0.9 s at 1024 nodes)
        api.inventory.stop()
        self.cluster.supervisor.shutdown()
        log.info("manager exiting; the cluster keeps running (re-adopt with any command)")
        return self.exit_code

    def _listen(self) -> tuple[list[socket.socket], str]:
        """The token and the listening sockets (unix and TCP); the dashboard URL."""
        from vhpc.web import listen

        token = listen.ensure_token(self.paths)
        host, port = listen.parse_listen(self.cluster.spec.options.get(
            "listen", listen.DEFAULT_LISTEN))
        sockets, port = _listen_sockets(self.paths, port or self._dashboard_port(), host)
        self.access = listen.TcpAccess(token, listen.allowed_hosts(host, port))
        return sockets, listen.dashboard_url(host, port, token)

    def _start_inventory(self) -> Inventory:
        """Once etcd answers (it started with the boot, off the nodes' path): every node's
        registry record, the DNS feed and the node health monitor."""
        from vhpc.cluster.inventory import Inventory

        self.cluster.wait_registry()
        inventory = Inventory.for_cluster(self.cluster)
        inventory.start()
        return inventory

    def _fail_after_boot(self, err: BaseException) -> int:
        """The cluster is up but this manager cannot serve it: say so, stop supervising
        (the daemons keep running; the next command starts a manager that adopts them)."""
        self.reporter.send(error=f"cluster {self.cluster.spec.name!r} is up, but its manager "
                           f"could not start its API ({err}): any command restarts it")
        log.error("could not start the API: %s", err, exc_info=err)
        self.cluster.supervisor.shutdown()
        return 1

    def _compose(self, inventory: Inventory, url: str) -> tuple[ClusterAPI, FastAPI]:
        """Build what serves a ready cluster: observer, API object, web app."""
        from vhpc.api import ClusterAPI
        from vhpc.server.observing import make_observer
        from vhpc.web.app import create_app

        assert self.access is not None  # made by _listen
        observer = make_observer(self.cluster)
        api = ClusterAPI(self.cluster, inventory, observer, url)
        return api, create_app(api, self.access, self._stop_server)

    async def serve(self, app: FastAPI, sockets: list[socket.socket]) -> None:
        """Serve the API until `down` or SIGTERM/SIGINT."""
        import asyncio

        import uvicorn

        loop = asyncio.get_running_loop()
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        self.server = uvicorn.Server(config)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop_server)
        # Our own handlers: stop serving, leave the cluster running, exit normally.
        self.server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
        await self.server.serve(sockets=sockets)


def _abort_boot(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Entry point of the detached manager process."""
    args = argv if argv is not None else sys.argv[1:]
    if len(args) != 2 or args[0] not in ("boot", "adopt"):
        print("usage: python -m vhpc.server.manager boot|adopt CLUSTER", file=sys.stderr)
        return 2
    mode, name = args
    _setup_logging(None)
    reporter = Reporter()
    paths = ClusterPaths.of(name)
    try:
        if mode == "boot":
            line = sys.stdin.readline()  # `vhpc up` starts us first, then plans: wait
            if not line.strip():
                return 0  # its planning failed: nothing to boot, nothing made
            spec = ClusterSpec.from_dict(json.loads(line))
            signal.signal(signal.SIGTERM, _abort_boot)  # a cancelled `up` rolls back
        else:
            spec = ClusterSpec.from_dict(json.loads(paths.spec.read_text()))
            _setup_logging(paths.manager_log)
        manager = Manager(mode, spec, reporter)
        code = manager.run()
    except KeyboardInterrupt:
        reporter.send(error="boot cancelled; everything made so far was removed")
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
