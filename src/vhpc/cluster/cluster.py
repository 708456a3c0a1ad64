"""Cluster: make a ClusterSpec real (build -> start -> ready), adopt it, tear it down.

Every resource is written to the ledger before it is made; teardown walks the ledger.
The runtime is passed in (Mininet's `Mininet(host=..., link=...)` idea), so unit tests
drive this class with a fake runtime.

One lock, `Cluster.lock`, is held by every path that changes the cluster's state (its
spec, its resources, its daemons on purpose): boot, adopt (with the recovery of a dead
manager's half-done operation), node add/remove/stop/start and a lost node
(cluster/inventory.py), and teardown. `spec` is only replaced, through `set_spec`, which
also persists it atomically; readers take the current value without the lock.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import logging
import os
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from vhpc.atomic import write_atomic
from vhpc.cluster import accounting, image_root, kept_logs, privacy, recovery, site_files
from vhpc.cluster import node as nodes_mod
from vhpc.cluster import operations as ops
from vhpc.cluster.events import EventBus
from vhpc.cluster.leaves import claim_neighbours, ensure_leaves
from vhpc.cluster.ledger import Kind, Ledger
from vhpc.cluster.node_tools import install_node_tools
from vhpc.cluster.operations import Operation, OpKind
from vhpc.cluster.supervisor import Supervised, Supervisor, heartbeat_age, touch
from vhpc.cluster.teardown import MANAGER_KEY, process_record, remove_owned
from vhpc.errors import BootError, VhpcError
from vhpc.runtime import Runtime, images, spread_dirs
from vhpc.runtime.cgroups import job_cgroup_mounts
from vhpc.runtime.gate import Gate
from vhpc.runtime.listening import PortCheck
from vhpc.runtime.namespaces import Mount, NsPaths
from vhpc.runtime.network import VethSpec
from vhpc.runtime.proc import ProcessRecord, record_of
from vhpc.runtime.spawn import NodeTarget
from vhpc.services import (
    dnsmasq,
    etcd,
    files,
    gres,
    jwt_auth,
    munge,
    openmpi,
    slurm,
    slurmdbd,
    slurmrestd,
)
from vhpc.services.base import DaemonSpec
from vhpc.services.slurm_cgroup import (
    hwloc_plugins_dir,
    job_limits_on,
    render_cgroup_conf,
    render_topology,
    topology_file,
)
from vhpc.services.slurm_client import SlurmClient, SlurmView
from vhpc.spec import fabric, scale
from vhpc.spec.model import HOST_IMAGE, ClusterSpec, NodeRole, NodeSpec
from vhpc.spec.paths import ClusterPaths
from vhpc.spec.placement import format_cpulist

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]


def _no_progress(message: str, done: int, total: int) -> None:
    pass


class Cluster:
    """A live cluster on this host."""

    def __init__(self, spec: ClusterSpec, paths: ClusterPaths, runtime: Runtime,
                 events: EventBus | None = None, progress: Progress = _no_progress,
                 workers: int = 8) -> None:
        self.spec = spec
        self.paths = paths
        self.runtime = runtime
        self.events = events or EventBus()
        self.progress = progress
        self.workers = workers
        self._boot_started = time.monotonic()  # the boot's timeline (mark) counts from here
        self.ledger = Ledger(paths.ledger)
        self.lock = threading.RLock()  # the one lock of state mutations (module docstring)
        self.closing = False  # set by teardown: no change may start after it
        self.supervisor = Supervisor(runtime, self.ledger, self.events,
                                     heartbeat=slurm.heartbeat_file(paths),
                                     deadline=(slurm.health_deadline_file(paths),
                                               slurm.MANAGER_STALE_AFTER))
        self.slurm = SlurmClient(paths.slurm_conf, paths.etc / "passwd")
        self.slurm_view = SlurmView(self.slurm)  # shared by status and the sampler
        self.inits = nodes_mod.NodeInits(self.ledger, runtime, paths.ns_dir)
        self.kept_logs: Path | None = None  # where teardown(keep_logs=True) put the logs
        self._registry_wait: Callable[[], None] | None = None  # set by boot: etcd's wait
        # set by boot: the db node's files, done with the host template the datadir came
        # from (the manager then makes the next boot's spare of it: spare_datadir.py)
        self._db_files: Future[Path | None] | None = None
        self._mariadb: tuple[DaemonSpec, Supervised] | None = None  # set by _start_database
        self.nodes_idle = threading.Event()  # set by boot once the nodes are idle

    def datadir_source(self) -> Path | None:
        """The host accounting template this boot's datadir came from (None: none)."""
        db_files = self._db_files
        if db_files is None or not db_files.done() or db_files.exception() is not None:
            return None
        return db_files.result()

    # -- boot -------------------------------------------------------------------------
    def boot(self, timeout: float | None = None) -> None:
        """Build everything and start every daemon; roll back completely on failure.

        `timeout`: seconds for the nodes to be idle; by default it grows with their count."""
        with self.lock:
            self._boot(scale.boot_timeout(len(self.spec.computes)) if timeout is None
                       else timeout)

    def _boot(self, timeout: float) -> None:
        # The db node's files (a ~20 MB datadir copy, ~0.3 s) are made in this thread while
        # the network and the nodes are; mariadbd waits for them (start_services).
        side = ThreadPoolExecutor(max_workers=1, thread_name_prefix="db-files")
        self._boot_started = time.monotonic()
        try:
            self.prepare_state(side)
            self.mark("state files written")
            self.progress("network", 0, 1)
            self.build_network()
            self.mark("bridge made")
            # Service nodes first: their daemons start while the compute nodes are made.
            # The db node comes first of them: mariadbd heads the chain slurmctld waits
            # for (MariaDB, slurmdbd), so it starts while the other service nodes are
            # made; then the controller's, whose munged slurmdbd needs too
            services = [n for n in self.spec.nodes if n.role is not NodeRole.COMPUTE]
            db = slurmdbd.db_node(self.spec)
            ctl = self.spec.controller
            self.supervisor.start_thread()
            if db is not None:
                self.build_nodes([db])
                self._start_database()
            if db is None or db.name != ctl.name:
                self.build_nodes([ctl])
            self._start_early("munged")
            # The other service nodes (DNS), then the compute nodes are made, and their
            # slurmds spawned, while the service daemons start (with accounting slurmctld
            # first waits ~0.2 s for MariaDB and slurmdbd): each slurmd is held before
            # its exec until slurmctld listens (runtime/gate.py), as one that came earlier
            # would register a second later
            others = [n for n in services if n.name not in (ctl.name, db and db.name)]
            gate = Gate(self.paths.run / "slurmd.gate")
            with ThreadPoolExecutor(max_workers=1) as pool:  # in this order
                made = pool.submit(self._build_service_nodes, others)
                building = pool.submit(self._build_and_spawn_computes, gate)
                try:
                    later = self.start_services(made)  # if it fails, the pool's exit waits
                finally:                                # for the building before the rollback
                    gate.release()
                made.result()
                building.result()
            # etcd (the registry) is not on the path to idle nodes: the manager starts it
            # and waits for it once they are, before it publishes them (wait_registry)
            self._registry_wait = later
            self.wait_idle([n.name for n in self.spec.computes], timeout)
            self.mark("compute nodes idle")
            self.nodes_idle.set()  # the manager's inventory thread starts etcd
            if self._db_files is not None:  # done (without accounting: nothing waited)
                self._db_files.result()
            ops.finish(self.paths.root)
        except BaseException as err:
            log.error("boot failed: %s; rolling back", err)
            self.progress("rolling back", 0, 1)
            side.shutdown(wait=True)  # no copy into the state directory while it goes
            cancelled = isinstance(err, KeyboardInterrupt)
            self.teardown(keep_logs=not cancelled, note="".join(
                traceback.format_exception(err)))
            if cancelled:
                raise
            where = (f"; its logs are kept in {self.kept_logs} ('vhpc -c {self.spec.name} "
                     "clean' removes them)") if self.kept_logs else ""
            if isinstance(err, VhpcError):
                err.args = (f"{err}{where}", *err.args[1:])
                raise
            raise BootError(f"cluster {self.spec.name!r} failed to boot: {err}{where}") \
                from err
        finally:
            side.shutdown(wait=False)
        self.events.emit("cluster_up", f"cluster {self.spec.name} is up with "
                         f"{len(self.spec.computes)} compute nodes")

    def mark(self, step: str) -> None:
        """One line of the boot's timeline in the manager's log (time since the boot)."""
        log.info("boot +%.3fs (manager cpu %.2fs): %s", time.monotonic() - self._boot_started,
                 time.process_time(), step)

    def wait_registry(self) -> None:
        """After a boot: start etcd (the registry) and wait until it answers."""
        wait, self._registry_wait = self._registry_wait, None
        if wait is not None:
            wait()

    def prepare_state(self, side: Executor | None = None) -> None:
        """State directory, the cluster's files and its munge key; the db node's files in
        `side` if given (start_services waits for them)."""
        p = self.paths
        # Before the ledger exists (`is_up` is false, `up` may drop the directory): the boot
        # record, so that while it runs nobody adopts the cluster (recovery.booting_manager),
        # and the spec; then this process as the manager, the first line of the ledger.
        spread_dirs.make_dir(p.root)  # in a block group of its own (ext4)
        ops.begin(p.root, Operation(OpKind.BOOT))  # until every node is idle
        self.spec_path_write()
        self.record_manager()  # a manager killed mid-boot is found (and stopped) by pid
        self.ledger.add(Kind.DIRECTORY, p.root)
        for d in (p.etc, p.slurm_etc, p.run, p.munge_dir, p.log, p.log / "console",
                  p.slurm_state, p.slurm_spool, hwloc_plugins_dir(p), p.ns_dir, p.home, p.data,
                  dnsmasq.hostsdir(p)):
            d.mkdir(parents=True, exist_ok=True)
            d.chmod(0o755)
        p.root.parent.chmod(0o755)
        privacy.secure_state_dir(p, self.spec.user_uid)  # the cluster's group only
        touch(slurm.heartbeat_file(p))
        touch(slurm.health_deadline_file(p), slurm.MANAGER_STALE_AFTER)
        etcd.ensure_root_password(p)
        self._write_user_files()
        self.write_hosts()
        write_atomic(p.etc / "resolv.conf", files.render_resolv_conf(self.spec))
        job_limits = job_limits_on(self.runtime.cgroup_version)
        site_files.make_share_points(self.spec, self.ledger)
        site_files.write_topology(self.spec, p)
        write_atomic(p.slurm_conf, slurm.render_slurm_conf(self.spec, p, job_limits=job_limits))
        if job_limits:  # next to slurm.conf, where slurmd looks for it
            write_atomic(p.slurm_etc / "cgroup.conf",
                         render_cgroup_conf(self.runtime.cgroup_version, self.spec.slurm_version))
        write_atomic(slurm.health_check_file(p), slurm.render_health_check(p), 0o755)
        write_atomic(openmpi.mca_params_file(p), openmpi.render_mca_params(self._node_file(
            openmpi.MCA_PARAMS_TARGET)))
        self._write_munge_key()
        jwt_auth.write_key(p)  # slurmctld's and slurmdbd's key of slurmrestd's tokens
        if side is None:
            accounting.prepare(self.spec, p)  # the db node's configs and datadir
        else:
            self._db_files = side.submit(accounting.prepare, self.spec, p)

    def record_manager(self) -> None:
        """Record the process running this Cluster as the cluster's manager."""
        record = record_of(os.getpid())
        if record is not None:
            self.ledger.add(Kind.PROCESS, MANAGER_KEY, "", **record.to_dict())

    def spec_path_write(self) -> None:
        """Persist the spec atomically (the manager and `vhpc clean` read it back)."""
        write_atomic(self.paths.spec, json.dumps(self.spec.to_dict(), indent=1),
                     privacy.PRIVATE_FILE_MODE)

    def set_spec(self, spec: ClusterSpec) -> None:
        """Replace the spec and persist it (the only way the spec changes)."""
        with self.lock:
            self.spec = spec
            self.spec_path_write()

    def _write_user_files(self) -> None:
        spec, p = self.spec, self.paths
        home = p.home / spec.user
        write_atomic(p.etc / "passwd", files.render_passwd(
            Path("/etc/passwd").read_text(), spec.user, spec.user_uid, str(home), spec.users))
        write_atomic(p.etc / "group", files.render_group(
            Path("/etc/group").read_text(), spec.user, spec.user_uid, spec.users))
        for other in spec.users:
            accounting.make_home(p.home / other.name, other.uid)
        home.mkdir(parents=True, exist_ok=True)
        for name in (".bashrc", ".profile"):
            write_atomic(home / name, files.render_profile())
            os.chown(home / name, spec.user_uid, spec.user_uid)
        for tool in install_node_tools():
            # `sbatch gemm.sh` in the home works like the seed's /usr/local/bin/gemm.sh
            (home / tool.name).symlink_to(tool)
        privacy.secure_home(home, spec.user_uid, spec.user_uid)

    def _write_munge_key(self) -> None:
        key = self.paths.munge_key
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
        with os.fdopen(fd, "wb") as f:
            f.write(os.urandom(munge.KEY_SIZE))

    def write_hosts(self) -> None:
        """The cluster hosts file and dnsmasq's hosts directory, written before any node
        bind-mounts them (a rename later would hide the new file from the nodes)."""
        # Only the service nodes: compute names come from DNS (registry -> dnsmasq), so
        # nodes added and removed at run time resolve the same way everywhere.
        text = files.render_hosts(self.spec, [(n.name, str(self.spec.ip_of(n)))
                                              for n in self.spec.nodes
                                              if n.role is not NodeRole.COMPUTE])
        write_atomic(self.paths.etc / "hosts", text)
        dnsmasq.apply_hosts_dir(dnsmasq.hostsdir(self.paths), {
            n.name: dnsmasq.render_node_hosts(self.spec, n.name, str(self.spec.ip_of(n)))
            for n in self.spec.nodes if not n.stopped})

    def build_network(self) -> None:
        """The private namespace directory and the cluster bridge."""
        self.ledger.add(Kind.MOUNT, self.paths.ns_dir)
        self.runtime.make_private_dir(self.paths.ns_dir)
        self.ledger.add(Kind.BRIDGE, self.spec.bridge)
        host = ipaddress.IPv4Interface(f"{self.spec.host_ip}/{self.spec.subnet.prefixlen}")
        self.runtime.create_bridge(self.spec.bridge, host)

    def build_nodes(self, nodes: list[NodeSpec]) -> None:
        """cgroups, namespaces and links of these nodes (namespaces in parallel)."""
        cluster_group = nodes_mod.cluster_cgroup(self.spec.name)
        if not self.ledger.entries(Kind.CGROUP, node=""):
            self.ledger.add(Kind.CGROUP, cluster_group)
        total = len(nodes)
        done = 0

        cgroup_lock = threading.Lock()

        def make(node: NodeSpec) -> None:
            group = nodes_mod.cgroup_group(self.spec.name, node.name)
            self.ledger.add(Kind.CGROUP, group, node.name)
            with cgroup_lock:  # the cluster's parent cgroup is made by the first node
                self.runtime.create_cgroup(group, format_cpulist(node.cpuset), node.memory,
                                           self.spec.pids_max_of(node))
            nodes_mod.prepare_private_dirs(self.paths, node)
            if node.role is NodeRole.COMPUTE:  # its slurmd's CPUs (services/slurm_cgroup.py)
                write_atomic(topology_file(self.paths, node.name),
                             render_topology(node.cpuset, node.memory))
            ns = NsPaths.under(self.paths.ns_dir, node.name)
            for path in ns.all():
                self.ledger.add(Kind.NAMESPACE, path, node.name)
            init = self.runtime.create_namespaces(
                ns, node.name, self.paths.ns_dir, self._node_mounts(node),
                self.runtime.cgroup_procs_files(group))
            self.inits.record(node.name, init)  # pid 1, in the cgroup: its kill ends it too

        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            for _ in pool.map(make, nodes):
                done += 1
                self.progress("creating nodes", done, total)
        veths = []
        for node in nodes:
            self.ledger.add(Kind.VETH, self.spec.veth_of(node), node.name)
            veths.append(self._veth(node))
        self.progress("wiring nodes", 0, total)
        claim_neighbours(self.spec, self.ledger, self.runtime, nodes)  # ARP table room
        ensure_leaves(self.spec, self.ledger, self.runtime, nodes)  # past ~1000 nodes, racks
        self.runtime.create_veths(veths)

    def _veth(self, node: NodeSpec) -> VethSpec:
        spec = self.spec
        return VethSpec(
            host_name=spec.veth_of(node),
            netns=NsPaths.under(self.paths.ns_dir, node.name).net,
            address=ipaddress.IPv4Interface(f"{spec.ip_of(node)}/{spec.subnet.prefixlen}"),
            gateway=spec.host_ip,
            bridge=fabric.bridge_of(spec, node),
        )

    def _node_mounts(self, node: NodeSpec) -> list[Mount]:
        """Everything mounted in a new node; with an image, below its image root."""
        mounts = nodes_mod.node_mounts(self.paths, node, node.memory, self.spec.shares) \
            + self._job_cgroup_mounts() + self._openmpi_mounts(node)
        if not image_root.uses_image(self.spec, node):
            return mounts
        image_root.prepare_dirs(self.paths, node.name)
        return image_root.image_mounts(self.paths, node.name, images.rootfs(self.spec.image),
                                       mounts, nodes_mod.resolv_target())

    def _slurm_root(self) -> Path:
        """The root tree the Slurm nodes run on: the cluster's image, or the host's."""
        return Path("/") if self.spec.image == HOST_IMAGE else images.rootfs(self.spec.image)

    def _node_root(self, node: NodeSpec) -> Path:
        """The root tree this node runs on (the dns node keeps the host's)."""
        return self._slurm_root() if image_root.uses_image(self.spec, node) else Path("/")

    def _node_file(self, target: str) -> str:
        """A file of the Slurm nodes' root tree ('' if it has none)."""
        try:
            return (self._slurm_root() / target.lstrip("/")).read_text()
        except OSError:
            return ""

    def _openmpi_mounts(self, node: NodeSpec) -> list[Mount]:
        """The cluster's Open MPI parameter file over the node root's own (services/
        openmpi.py), where that root has Open MPI."""
        target = openmpi.MCA_PARAMS_TARGET
        if not (self._node_root(node) / target.lstrip("/")).is_file():
            return []
        return [Mount(target, str(openmpi.mca_params_file(self.paths)))]

    def _job_cgroup_mounts(self) -> list[Mount]:
        """The node's own cgroup mounts for Slurm's job cgroups, where jobs get them."""
        version = self.runtime.cgroup_version
        return job_cgroup_mounts(version=version) if job_limits_on(version) else []

    # -- daemons ----------------------------------------------------------------------
    def target(self, node: str) -> NodeTarget:
        """How to run something inside `node`."""
        group = nodes_mod.cgroup_group(self.spec.name, node)
        procs = self.runtime.cgroup_procs_files(group)
        # before each start: a node whose init died (node stop, lost, OOM) gets a new one
        return nodes_mod.node_target(self.spec, self.paths, node, procs,
                                     lambda: self.inits.ensure(node, procs))

    def service_daemons(self) -> list[DaemonSpec]:
        """Daemons of the service nodes, in start order."""
        ctl = self.spec.controller
        out = [munge.daemon(self.paths, ctl.name,
                            scale.munge_threads(len(self.spec.computes)))]
        out += accounting.daemons(self.spec, self.paths)  # slurmctld needs slurmdbd first
        out.append(slurm.slurmctld(self.spec, self.paths))
        # the compute nodes' names: slurmctld asks for them once they register, well
        # after this spawn (~10 ms on a busy host, kept off the chain to slurmctld)
        dns = [n for n in self.spec.nodes if n.role is NodeRole.DNS]
        if dns:
            out.append(dnsmasq.daemon(self.spec, self.paths, dns[0]))
        out.append(slurmrestd.daemon(self.spec, self.paths))  # after slurmctld: its JWTs
        if dns:
            out.append(etcd.daemon(self.spec, self.paths, dns[0]))
        return out

    def start_services(self, made: Future[None] | None = None) -> Callable[[], None]:
        """Start the accounting daemons, slurmctld, dnsmasq and slurmrestd (munged and
        mariadbd started with their nodes); return once slurmctld answers. `made`: the
        making of the service nodes not made yet, awaited before a daemon starts on one.

        They start side by side (only munged is waited for first: slurmctld needs it).
        The returned callable starts etcd and waits for it: the boot leaves that to the
        manager once the nodes are idle (`wait_registry`), since nothing on their path
        needs it (its start took ~0.13 s of CPU beside the boot's, on 2 cores).
        """
        n = len(self.spec.computes)  # the waits grow with the node count (spec/scale.py)
        # slurmctld opens its port once its state and accounting are loaded: a listening
        # port is one that takes the slurmds' registrations (runtime/listening.py)
        controller_netns = NsPaths.under(self.paths.ns_dir, self.spec.controller.name).net
        checks: dict[str, tuple[Callable[[], bool], float, str]] = {
            "munged": (self.paths.munge_socket.exists, scale.service_timeout("munged", n),
                       "munged socket"),
            "slurmctld": (PortCheck(controller_netns, slurm.SLURMCTLD_PORT, self.slurm.ping),
                          scale.service_timeout("slurmctld", n), "slurmctld to answer"),
            "etcd": (lambda: etcd.healthy(self.spec), scale.service_timeout("etcd", n),
                     "etcd to answer"),
        }
        started: list[DaemonSpec] = []
        # munged and MariaDB, started with their nodes (_start_early, _start_database),
        # are waited for before slurmdbd, then slurmdbd before slurmctld.
        mariadb = self._mariadb
        db_name = mariadb[0].node if mariadb is not None else None
        daemons = self.service_daemons()
        registry = [d for d in daemons if d.name == "etcd"]
        for daemon in daemons:
            if daemon in registry or daemon.name == "mariadbd":
                continue
            if daemon.name == "munged":  # started with its node (_start_early)
                self._wait_for(*checks["munged"], daemon, made)
                self.mark("munged answers")
                continue
            if daemon.name == "slurmdbd" and mariadb is not None:
                accounting.wait_ready(self.spec, self.paths, self.slurm, *mariadb)
            if made is not None and daemon.node not in (self.spec.controller.name, db_name):
                made.result()  # its node (DNS) is made beside this thread
            self.progress(f"starting {daemon.name}", 0, 1)
            supervised = self.supervisor.start(daemon, self.target(daemon.node))
            self.mark(f"{daemon.name} started")
            if daemon.name in accounting.WAITED:  # registers the cluster once it answers
                accounting.wait_ready(self.spec, self.paths, self.slurm, daemon, supervised)
            else:
                started.append(daemon)

        def wait(names: set[str]) -> None:
            for daemon in started:
                if daemon.name in names and daemon.name in checks:
                    self._wait_for(*checks[daemon.name], daemon, made)

        def start_registry() -> None:
            for daemon in registry:
                self.supervisor.start(daemon, self.target(daemon.node))
                started.append(daemon)
                self.mark(f"{daemon.name} started")
            wait({"etcd"})

        # slurmd -Z started before slurmctld listens retries its registration only a
        # second later: wait for the controller
        wait({"slurmctld"})
        self.mark("slurmctld answers")
        return start_registry

    def _start_database(self) -> None:
        """mariadbd on the db node, once its datadir is in place (start_services waits
        for it to answer before it starts slurmdbd)."""
        if self._db_files is not None:
            self._db_files.result()  # its datadir is copied (raises what the copy did)
        self._mariadb = self._start_early("mariadbd")

    def _start_early(self, name: str) -> tuple[DaemonSpec, Supervised]:
        """Service daemon `name`, as soon as its node exists (mariadbd, munged: the
        chain to slurmctld; start_services waits for them to answer)."""
        daemon = next(d for d in self.service_daemons() if d.name == name)
        self.progress(f"starting {daemon.name}", 0, 1)
        supervised = self.supervisor.start(daemon, self.target(daemon.node))
        self.mark(f"{daemon.name} started")
        return daemon, supervised

    def _wait_for(self, ready: Callable[[], bool], timeout: float, what: str,
                  daemon: DaemonSpec, beside: Future[None] | None = None) -> None:
        """Until `ready()`; raises what `beside` (work done meanwhile) raised, if it did."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return
            if beside is not None and beside.done():
                beside.result()  # its failure is the boot's, not this wait's timeout
            time.sleep(0.01)  # each check is a file's stat or a netlink query
        tail = _tail(daemon.log_file)
        raise BootError(f"timed out after {timeout:.0f}s waiting for {what}; "
                        f"last log lines of {daemon.key}: {tail}")

    def _build_service_nodes(self, nodes: list[NodeSpec]) -> None:
        """The service nodes not made before the boot's first daemons (DNS)."""
        self.build_nodes(nodes)
        self.mark("service nodes made")

    def _build_and_spawn_computes(self, gate: Gate) -> None:
        """The boot's compute nodes, then their slurmds, held at `gate` if it is closed."""
        self.build_nodes(list(self.spec.computes))
        self.mark("compute nodes made")
        self.start_computes(list(self.spec.computes), None if gate.released else gate)
        self.mark("slurmds started" + ("" if gate.released else " (held until slurmctld "
                                       "listens)"))

    def start_computes(self, nodes: Iterable[NodeSpec], gate: Gate | None = None) -> None:
        """slurmd on each compute node (they register as dynamic nodes); each held at
        `gate` until it is released, if given."""
        nodes = list(nodes)
        self.write_gres_conf(nodes)
        daemons = [slurm.slurmd(self.spec, self.paths, node) for node in nodes]
        if gate is not None:
            daemons = [dataclasses.replace(d, argv=gate.wrap(d.argv)) for d in daemons]
        self.supervisor.start_many([(daemon, self.target(node.name))
                                    for daemon, node in zip(daemons, nodes, strict=True)])

    def write_gres_conf(self, adding: list[NodeSpec]) -> None:
        """gres.conf for the cluster's nodes and those being added, before their slurmd
        starts (it reads its GPU devices there)."""
        names = {n.name for n in adding}
        nodes = [n for n in self.spec.nodes if n.name not in names] + adding
        write_atomic(gres.gres_conf_file(self.paths),
                     gres.render_gres_conf(nodes, self.spec.slurm_version))

    def wait_idle(self, names: list[str], timeout: float) -> None:
        """Wait until every named node is idle in Slurm."""
        deadline = time.monotonic() + timeout
        self._wait_slurmds_listen(names, deadline)
        states: dict[str, str] = {}
        while time.monotonic() < deadline:
            states = self.slurm.node_states()
            idle = sum(1 for n in names if states.get(n, "").rstrip("*~#") == "idle")
            self.progress("waiting for nodes to be idle", idle, len(names))
            if idle == len(names):
                return
            time.sleep(scale.poll_interval(len(names)))  # each sinfo costs slurmctld
        missing = [n for n in names if states.get(n, "").rstrip("*~#") != "idle"]
        raise BootError(
            f"timed out after {timeout:.0f}s: {len(missing)} nodes not idle "
            f"({', '.join(missing[:5])}): see their slurmd.<node>.log"
        )

    def _wait_slurmds_listen(self, names: list[str], deadline: float) -> None:
        """Until each named node's slurmd listens (it registers right after its health
        check): a cheap kernel query each (runtime/listening.py), where each poll of
        Slurm's node states is a process, a credential and an RPC beside the starting
        slurmds. Only for a small cluster (spec/scale.py); a kernel without socket
        diagnostics skips the wait."""
        if not scale.waits_for_listening_slurmds(len(names)):
            return
        pending = [PortCheck(NsPaths.under(self.paths.ns_dir, name).net, slurm.SLURMD_PORT,
                             lambda: True) for name in names]
        while pending and time.monotonic() < deadline:
            pending = [check for check in pending if not check()]
            if pending:
                time.sleep(0.01)

    # -- adopt ------------------------------------------------------------------------
    def adopt(self) -> None:
        """Take over a running cluster from its ledger (after a manager restart).

        First settles what the dead manager left half-done (cluster/recovery.py: an
        unfinished `up` removes the cluster and raises BootError), then watches or
        restarts every daemon, then puts Slurm in step (rolled-back nodes deleted, nodes
        drained for 'vhpc manager down' resumed).
        """
        with self.lock:
            self.record_manager()
            silent = heartbeat_age(slurm.heartbeat_file(self.paths))
            forget = recovery.settle(self)
            records = {e.ident: e for e in self.ledger.entries(Kind.PROCESS)}
            self.supervisor.start_thread()
            wanted = self.service_daemons() + [slurm.slurmd(self.spec, self.paths, n)
                                               for n in self.spec.computes if not n.stopped]
            for daemon in wanted:
                entry = records.get(daemon.key)
                record = process_record(entry) if entry else ProcessRecord(0, -1)
                self.supervisor.adopt(daemon, self.target(daemon.node), record)
            resumed = recovery.reconcile_slurm(self, forget)
        message = f"manager adopted cluster {self.spec.name}"
        if silent is not None:
            message += f"; no manager had supervised it for {silent:.0f}s"
        if resumed:
            message += (f"; resumed {len(resumed)} nodes drained meanwhile "
                        f"('{slurm.MANAGER_DOWN_REASON}')")
        self.events.emit("manager_adopted", message, "", "warning" if resumed else "info")

    # -- teardown ---------------------------------------------------------------------
    def teardown(self, keep_logs: bool = False, note: str = "") -> list[str]:
        """Remove everything the ledger holds; return what could not be removed.

        Waits for a change in progress (the state lock) and refuses any after it. With
        `keep_logs` the logs move aside first (`kept_logs`: where; `note`: error.txt).
        """
        def keep() -> None:
            self.kept_logs = kept_logs.keep(self.paths, self.spec.name, note)

        with self.lock:
            self.closing = True
            self.supervisor.shutdown()
            return remove_owned(self.ledger, self.runtime,
                                before_directories=keep if keep_logs else None)

    # -- status -----------------------------------------------------------------------
    def node_status(self, slurm_states: dict[str, str]) -> list[dict[str, Any]]:
        """One dict per node: addresses, limits, usage, OOM count, Slurm state, daemons."""
        out = []
        for node in self.spec.nodes:
            group = nodes_mod.cgroup_group(self.spec.name, node.name)
            stats = self.runtime.cgroup_stats(group)
            daemons: list[Supervised] = self.supervisor.daemons(node.name)
            out.append({
                "name": node.name,
                "role": node.role.value,
                "ip": str(self.spec.ip_of(node)),
                "cpuset": format_cpulist(node.cpuset),
                "memory_limit": node.memory,
                "memory_usage": stats.mem_bytes,
                "memory_peak": stats.mem_peak or 0,
                "oom_kills": stats.oom_kills,
                "cpu_seconds": round(stats.cpu_ns / 1e9, 3),
                "slurm_state": slurm_states.get(node.name, "-" if node.role is not
                                                NodeRole.COMPUTE else "unknown"),
                "gres": gres.node_gres(node),
                **site_files.node_site_fields(self.spec, node),
                "pids": self.runtime.cgroup_pids(group),
                "services": [d.to_dict() for d in daemons],
            })
        return out


def _tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(text[-lines:]) or "(empty log)"
