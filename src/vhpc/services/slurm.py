"""Slurm: slurm.conf rendered from the spec (pure), and the slurmctld/slurmd daemons.

Compute nodes are Slurm *dynamic nodes* (`slurmd -Z --conf ...`): slurm.conf lists no
NodeName at all, `MaxNodeCount` bounds them and the partition takes `Nodes=ALL`, so nodes
join and leave at run time without restarting slurmctld.

Every slurmd runs vhpc's health check (`HealthCheckProgram`, every
`HEALTH_CHECK_INTERVAL` seconds): while the manager's heartbeat is older than
`MANAGER_STALE_AFTER` (its deadline file, moved that far past each beat, is in the past:
the manager is dead and nothing restarts a crashed daemon), the node
drains itself with reason `vhpc manager down`; it resumes when the heartbeat is fresh
again (the adopting manager also resumes every such node at once).
"""

from __future__ import annotations

from pathlib import Path

from vhpc.services import gres, jwt_auth, slurm_site, slurm_versions, slurmdbd
from vhpc.services.base import RPC_PATH_NICE, DaemonSpec
from vhpc.services.slurm_cgroup import select_type_parameters, slurmd_env, tracking_lines
from vhpc.spec import scale
from vhpc.spec.model import ClusterSpec, NodeSpec
from vhpc.spec.paths import ClusterPaths
from vhpc.spec.sizes import MIB

SLURMCTLD_PORT = 6817
SLURMD_PORT = 6818
HEALTH_CHECK_INTERVAL = 30  # seconds; 1024 nodes -> ~34 tiny shell runs a second
MANAGER_STALE_AFTER = 60  # seconds without a heartbeat: the manager is dead
MANAGER_DOWN_REASON = "vhpc manager down"


def heartbeat_file(paths: ClusterPaths) -> Path:
    """The file the manager touches every few seconds while it supervises the cluster."""
    return paths.run / "manager.heartbeat"


def health_check_file(paths: ClusterPaths) -> Path:
    """The HealthCheckProgram every slurmd runs."""
    return paths.slurm_etc / "vhpc-healthcheck"


def health_deadline_file(paths: ClusterPaths) -> Path:
    """The file whose modification time is when the manager counts as dead: the supervisor
    moves it MANAGER_STALE_AFTER seconds past each heartbeat."""
    return paths.run / "manager.deadline"


def render_health_check(paths: ClusterPaths,
                        marker: Path = Path("/run/vhpc-manager-down"),
                        now: Path = Path("/run/vhpc-health-now")) -> str:
    """The health check script: drain while the manager's heartbeat is stale, resume after.

    Cheap on purpose (it runs on every node at once, and before each slurmd's
    registration): shell builtins only when all is well. `now` (truncated: its
    modification time is now) newer than the deadline file means no heartbeat for
    MANAGER_STALE_AFTER seconds; the marker in the node's private /run keeps it from
    calling scontrol more than once.
    """
    return f"""#!/bin/sh
# written by vhpc: drain this node while the cluster's manager is down (no heartbeat for
# {MANAGER_STALE_AFTER} s: nothing restarts crashed daemons), resume it after.
deadline={health_deadline_file(paths)}
now={now}
mark={marker}
reason='{MANAGER_DOWN_REASON}'
[ -e "$deadline" ] || exit 0
: > "$now"
if [ "$now" -nt "$deadline" ]; then
    [ -e "$mark" ] && exit 0
    node=${{SLURMD_NODENAME:-$(hostname)}}
    : > "$mark"
    # a node someone else drained keeps its reason (and is not resumed by vhpc later)
    scontrol show node -o "$node" | grep -q 'State=[^ ]*DRAIN' ||
        scontrol update nodename="$node" state=drain reason="$reason"
elif [ -e "$mark" ]; then
    rm -f "$mark"
    node=${{SLURMD_NODENAME:-$(hostname)}}
    if scontrol show node -o "$node" | grep -q "Reason=$reason"; then
        scontrol update nodename="$node" state=resume
    fi
fi
exit 0
"""


def render_slurm_conf(spec: ClusterSpec, paths: ClusterPaths, mpi_default: str = "pmix",
                      job_limits: bool = False) -> str:
    """The cluster's slurm.conf (`job_limits`: Slurm's job cgroups, services/slurm_cgroup.py)."""
    ctl = spec.controller
    lines = [
        "# slurm.conf written by vhpc; compute nodes join as dynamic nodes (slurmd -Z)",
        f"ClusterName={spec.name}",
        f"SlurmctldHost={ctl.name}({spec.ip_of(ctl)})",
        "SlurmUser=root",
        "SlurmdUser=root",
        f"SlurmctldPort={SLURMCTLD_PORT}",
        f"SlurmdPort={SLURMD_PORT}",
        "AuthType=auth/munge",
        f"AuthInfo=socket={paths.munge_socket}",
        "CredType=cred/munge",
        f"StateSaveLocation={paths.slurm_state}",
        f"SlurmdSpoolDir={paths.slurm_spool}/%n",
        f"SlurmctldPidFile={paths.run}/slurmctld.pid",
        f"SlurmdPidFile={paths.run}/slurmd.%n.pid",
        f"SlurmctldLogFile={paths.log}/slurmctld.log",
        f"SlurmdLogFile={paths.log}/slurmd.%n.log",
        "SlurmctldDebug=info",
        "SlurmdDebug=info",
        *tracking_lines(spec, job_limits),
        f"JobAcctGatherType={slurmdbd.job_acct_gather(spec)}",
        "SelectType=select/cons_tres",
        *gres.slurm_conf_lines(spec),  # fake GPUs (services/gres.py: gres.conf)
        f"SelectTypeParameters={select_type_parameters(job_limits)}",
        f"MpiDefault={mpi_default}",
        "ReturnToService=2",
        f"MaxNodeCount={spec.max_nodes}",
        "SlurmctldTimeout=30",
        f"SlurmdTimeout={scale.slurmd_timeout(spec.max_nodes)}",  # grows past 240 nodes
        *launch_reliability_lines(),  # MessageTimeout, TCPTimeout, UnkillableStepTimeout
        "InactiveLimit=0",
        "KillWait=5",
        # One OOM-killed MPI rank must not leave the others waiting forever.
        "KillOnBadExit=1",
        "MinJobAge=300",
        # Dynamic nodes are not in slurm.conf: a slurmd cannot resolve its peers, so no
        # message fan-out through slurmds (Slurm's advice for dynamic nodes).
        "TreeWidth=65533",
        "SchedulerType=sched/backfill",
        "SchedulerParameters=sched_interval=2",
        "LaunchParameters=use_interactive_step",
        f"HealthCheckProgram={health_check_file(paths)}",
        f"HealthCheckInterval={HEALTH_CHECK_INTERVAL}",
        "HealthCheckNodeState=ANY",
        *slurm_site.partition_lines(spec),  # partitions of a site file (NodeSets by group)
        *slurm_site.topology_lines(spec),  # racks: topology/tree
        *slurmdbd.slurm_conf_lines(spec, paths),  # accounting and fair share (a db node)
        *submission_limit_lines(),
        *jwt_auth.conf_lines(paths),  # slurmrestd's JSON Web Tokens
    ]
    # written for 22.05; what later releases removed or renamed: services/slurm_versions.py
    return "\n".join(slurm_versions.adapt("slurm.conf", lines, spec.slurm_version)) + "\n"


#: Seconds a Slurm RPC round trip may take: on a host whose cores every node shares, a
#: slurmd or slurmstepd may wait its turn for a while (Slurm's default is 10).
MESSAGE_TIMEOUT = 20
#: Seconds a TCP connect may take: one lost SYN costs 1 s and a second one 3 s before
#: the kernel resends it; Slurm's default (2) survives only the first.
TCP_TIMEOUT = 5
#: slurm.conf(5): "Ensure that UnkillableStepTimeout is at least 5 times larger than
#: MessageTimeout, otherwise it can lead to unexpected draining of nodes" (22.05's
#: default stays 60 s whatever MessageTimeout is: nodes drained with "Kill task failed").
UNKILLABLE_STEP_TIMEOUT = 6 * MESSAGE_TIMEOUT


def launch_reliability_lines() -> list[str]:
    """Timeouts of step launch and step end that hold while the host is saturated."""
    return [f"MessageTimeout={MESSAGE_TIMEOUT}", f"TCPTimeout={TCP_TIMEOUT}",
            f"UnkillableStepTimeout={UNKILLABLE_STEP_TIMEOUT}"]


def submission_limit_lines() -> list[str]:
    """Refuse at submission a job no partition could ever run (more nodes, CPUs or memory
    than its nodes have), as a static site does: with dynamic nodes (MaxNodeCount leaves
    room) Slurm would otherwise queue it forever. The partition totals follow nodes
    joining and leaving, so adding nodes raises the ceiling."""
    return ["EnforcePartLimits=ALL"]


def dynamic_node_conf(spec: ClusterSpec, node: NodeSpec) -> str:
    """The `--conf` string a compute node registers with (its real CPUs and memory)."""
    parts = [
        f"CPUs={node.cpus}",
        f"RealMemory={node.memory // MIB}",
        f"NodeAddr={spec.ip_of(node)}",
        f"NodeHostname={node.name}",
    ]
    if node.features:
        parts.append(f"Feature={','.join(node.features)}")
    if node.gpus > 0:
        parts.append(f"Gres={gres.node_gres(node)}")
    return " ".join(parts)


def console_log(paths: ClusterPaths, daemon: str, node: str) -> Path:
    """Where a Slurm daemon's stdout/stderr go: kept apart from its own log file
    (SlurmdLogFile), which `-D` would otherwise get every line of twice."""
    return paths.log / "console" / f"{daemon}.{node}.log"


def slurmctld(spec: ClusterSpec, paths: ClusterPaths) -> DaemonSpec:
    """slurmctld in the foreground on the controller node."""
    node = spec.controller.name
    argv = ("slurmctld", "-D", "-i", "-f", str(paths.slurm_conf))
    return DaemonSpec("slurmctld", node, argv, console_log(paths, "slurmctld", node),
                      {"SLURM_CONF": str(paths.slurm_conf)}, session_nice=RPC_PATH_NICE)


def slurmd(spec: ClusterSpec, paths: ClusterPaths, node: NodeSpec) -> DaemonSpec:
    """slurmd in the foreground, registering `node` as a dynamic node."""
    argv = ("slurmd", "-D", "-f", str(paths.slurm_conf), "-N", node.name,
            "-Z", "--conf", dynamic_node_conf(spec, node))
    return DaemonSpec("slurmd", node.name, argv, console_log(paths, "slurmd", node.name),
                      {"SLURM_CONF": str(paths.slurm_conf), **slurmd_env(paths, node.name)})
