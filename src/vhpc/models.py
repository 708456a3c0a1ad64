"""The documents that cross a process boundary: what the manager's HTTP API returns and takes.

One pydantic model per document, shared by the server (``web/app.py`` declares them as
``response_model``, so they are the OpenAPI schema at ``/openapi.json``), the HTTP client
(``client.py`` parses into them), the CLI, the Python API and the dashboard
(``web/static/app.js`` reads the same field names). Pure data: no vhpc import but errors.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

API_PREFIX = "/api/v1"
MAX_NAMES = 4096  # node names in one request
MAX_COUNT = 65536  # nodes added by count in one request (more than any subnet holds)


class Model(BaseModel):
    """Base of the wire models: unknown fields are ignored (an older or newer peer)."""

    model_config = ConfigDict(extra="ignore")


class Phase(StrEnum):
    """Where the cluster is in its life."""

    BOOTING = "booting"
    READY = "ready"
    STOPPING = "stopping"
    FAILED = "failed"


class Progress(Model):
    """What the manager is doing now: ``ready`` once the cluster is up."""

    message: str
    done: int = 0
    total: int = 0


class Daemon(Model):
    """One supervised daemon of a node."""

    name: str
    state: str = Field(description="supervisor state: STARTING, RUNNING, BACKOFF, EXITED, "
                                   "FATAL, STOPPED...")
    pid: int | None = None
    restarts: int = 0


class NodeStatus(Model):
    """One node in the status document: limits, usage, Slurm state, daemons."""

    name: str
    role: str = Field(description="controller, compute, dns or db")
    ip: str
    cpuset: str
    memory_limit: int = Field(description="bytes")
    memory_usage: int = Field(description="bytes")
    memory_peak: int = 0
    oom_kills: int = 0
    cpu_seconds: float = 0.0
    slurm_state: str
    gres: str = Field(default="", description="Slurm GRES of the node, e.g. gpu:a100:2")
    group: str = Field(default="", description="node group of the cluster file ('' = none)")
    partitions: list[str] = Field(default=[], description="Slurm partitions it is in")
    features: list[str] = Field(default=[], description="Slurm features")
    rack: str = Field(default="", description="rack (topology.conf switch)")
    pids: list[int] = []
    services: list[Daemon] = []
    cpu_percent: float | None = Field(default=None,
                                      description="% of one core (sampler; stream)")
    rx_bps: float | None = None
    tx_bps: float | None = None
    nprocs: int | None = None


class Job(Model):
    """One Slurm job: as squeue shows it (status), or its record (GET /api/v1/jobs)."""

    id: str
    name: str = ""
    user: str = ""
    state: str = ""
    nodes: str = ""
    time: str = Field(default="", description="time used as squeue prints it (status)")
    account: str = ""
    partition: str = ""
    elapsed: int = Field(default=0, description="seconds run (so far, if running)")
    exit_code: str = Field(default="", description="code:signal, e.g. 0:0, 3:0, 0:9")
    max_rss: int | None = Field(default=None, description="bytes, largest step "
                                                           "(accounting only)")
    submit: float | None = Field(default=None, description="Unix time")
    start: float | None = None
    end: float | None = None
    source: str = Field(default="", description="squeue (slurmctld) or sacct (accounting)")
    slurm_state: str = Field(default="", description="Slurm's own state when `state` differs: "
                             "a COMPLETED job with a failed step is reported FAILED")
    step_exit_code: str = Field(default="", description="worst exit status of the job's "
                                "steps (code:signal), when one failed")
    failed_steps: list[str] = Field(default_factory=list, description="steps that failed, "
                                    "e.g. '7.0 CANCELLED 0:105' (accounting only)")


class JobList(Model):
    """GET /api/v1/jobs, newest first."""

    jobs: list[Job]
    accounting: bool = Field(default=False, description="finished jobs come from sacct")


class Status(Model):
    """GET /api/v1/status: the cluster, its nodes and jobs."""

    cluster: str
    phase: Phase
    progress: Progress
    error: str = ""
    subnet: str
    bridge: str
    partition: str
    state_dir: str
    slurm_conf: str
    cgroup_version: int
    slurm_version: str = Field(default="", description="the Slurm version the nodes run")
    image: str = Field(default="host", description="the nodes' root: host or an image")
    host_cpus: list[int]
    dashboard: str = Field(description="the dashboard URL, with ?token=")
    uptime: float
    nodes: list[NodeStatus] = []
    jobs: list[Job] = []
    slurm_age: float | None = Field(default=None,
                                    description="age of Slurm's view in seconds")


class Health(Model):
    """GET /api/v1/health: the manager answers (runs no Slurm command)."""

    cluster: str
    phase: Phase
    uptime: float
    dashboard: str = Field(default="", description="the dashboard URL, with ?token=")


class NodeInfo(Model):
    """One node of GET /api/v1/nodes: registry state and Slurm state."""

    name: str
    role: str
    ip: str
    cpuset: str
    cpus: int = 1
    memory: int = Field(description="memory limit in bytes")
    features: list[str] = []
    state: str = Field(description="registry state: up, stopped, lost, draining")
    slurm_state: str = "unknown"
    reason: str = ""
    group: str = Field(default="", description="node group of the cluster file ('' = none)")
    partitions: list[str] = Field(default=[], description="Slurm partitions it is in")
    rack: str = Field(default="", description="rack (topology.conf switch)")


class NodeList(Model):
    """GET /api/v1/nodes."""

    nodes: list[NodeInfo]


class AddNodesRequest(Model):
    """POST /api/v1/nodes: names, or a count of auto-named nodes."""

    model_config = ConfigDict(extra="forbid")

    names: list[str] = Field(default=[], max_length=MAX_NAMES)
    count: int = Field(default=0, ge=0, le=MAX_COUNT)
    memory: str | None = Field(default=None, max_length=32,
                               description="e.g. 250M (default: the cluster's node memory)")
    cpus: int | None = Field(default=None, ge=1, le=4096)
    cpuset: str | None = Field(default=None, max_length=256)
    features: list[str] = Field(default=[], max_length=64)
    gpus: str = Field(default="", max_length=48,
                      description="fake GPUs of each new node: 2 or a100:2 (default none)")
    group: str = Field(default="", max_length=32,
                       description="node group: new nodes <group>N with its memory, CPUs, "
                                   "GPUs, features, rack and partitions")
    wait: bool = Field(default=True, description="return once the nodes are idle in Slurm")


class AddNodesResult(Model):
    """The nodes POST /api/v1/nodes made."""

    added: list[NodeInfo]


class RemoveNodesResult(Model):
    """DELETE /api/v1/nodes?name=...: what was removed, and what could not be."""

    removed: list[str]
    leftovers: list[str] = []


class NodeActionResult(Model):
    """POST /api/v1/nodes/{name}/stop|start."""

    name: str
    action: str = Field(description="stop or start")


class DownResult(Model):
    """POST /api/v1/down."""

    ok: bool
    leftovers: list[str] = []
    logs: str = ""  # with keep_logs: where the logs were kept (cluster/kept_logs.py)


class Event(Model):
    """A cluster event: node added, daemon restarted, OOM kill..."""

    id: int = 0
    ts: float
    kind: str = Field(description="node_added, daemon_restart, oom_kill, ...")
    node: str = ""
    level: str = "info"
    message: str


class EventList(Model):
    """GET /api/v1/events, newest first."""

    events: list[Event]


class LogLine(Model):
    """One line of the central log."""

    id: int
    ts: float
    node: str
    service: str
    level: str
    message: str
    kind: str = Field(default="", description="the event kind for vhpc's own events "
                                              "(service vhpc), else empty")


class LogList(Model):
    """GET /api/v1/logs, newest first."""

    logs: list[LogLine]


class MetricSeries(Model):
    """One node's samples of one metric; node ``_total`` is the cluster's sum."""

    node: str
    metric: str
    points: list[tuple[float, float]] = Field(description="[[unix time, value], ...]")


class MetricsResult(Model):
    """GET /api/v1/metrics."""

    series: list[MetricSeries]


class ErrorDetail(Model):
    """What failed: the exception class name, one line, and what to do."""

    type: str = Field(description="a vhpc.errors class name, e.g. NoSuchNodeError")
    message: str
    fix: str = ""


class ErrorBody(Model):
    """The body of every error response (4xx and 5xx)."""

    error: ErrorDetail

class UserInfo(Model):
    """A cluster user: login name, Slurm account, uid (= gid), home in the shared /home."""

    name: str
    account: str
    uid: int
    home: str
    default: bool = Field(default=False, description="the cluster's default user (cluser)")


class UserList(Model):
    """GET /api/v1/users: the cluster's users and whether accounting (slurmdbd) is on."""

    users: list[UserInfo]
    accounting: bool


class AddUserRequest(Model):
    """POST /api/v1/users: a user to add at run time, in an existing Slurm account (or a
    new one, with `new_account`)."""

    name: str = Field(min_length=1, max_length=32)
    account: str = Field(default="default", min_length=1, max_length=32)
    new_account: bool = False


class FaultKind(StrEnum):
    """What a fault does (docs/faults.md)."""

    PARTITION = "partition"
    LOSS = "loss"
    RATE = "rate"
    DELAY = "delay"
    FREEZE = "freeze"
    KILL = "kill"


class FaultRequest(Model):
    """POST /api/v1/faults: one fault to inject (checked by the manager)."""

    kind: FaultKind
    nodes: list[str] = Field(default=[], max_length=MAX_NAMES,
                             description="nodes it applies to (all kinds but kill)")
    peers: list[str] = Field(default=[], max_length=MAX_NAMES,
                             description="partition: cut only from these nodes ('controller' "
                                         "names the slurmctld node); empty: from everything")
    percent: float | None = Field(default=None, description="loss: share of packets dropped")
    rate: str = Field(default="", max_length=32, description="rate: e.g. 10mbit, 512kbit")
    delay_ms: int | None = Field(default=None, description="delay: milliseconds (needs netem)")
    daemon: str = Field(default="", max_length=128,
                        description="kill: DAEMON@NODE, or DAEMON where only one runs")


class Fault(Model):
    """A fault: active until cleared (a kill is done at once and kept only as an event)."""

    id: str = Field(description="f1, f2...; what 'vhpc fault clear ID' takes")
    kind: FaultKind
    nodes: list[str] = []
    peers: list[str] = []
    percent: float | None = None
    rate: str = ""
    delay_ms: int | None = None
    daemon: str = ""
    since: float = Field(description="Unix time it was injected")
    active: bool = True
    description: str = Field(description="one line, e.g. 'compute1 cut off from everything'")


class FaultList(Model):
    """GET /api/v1/faults: the active faults, oldest first."""

    faults: list[Fault]


class ClearFaultsResult(Model):
    """DELETE /api/v1/faults: the faults cleared."""

    cleared: list[Fault]
