"""A fake of vhpc.api.ManagerAPI for the HTTP tests: in-memory nodes, scripted failures."""

from __future__ import annotations

import time

import httpx
from fastapi import FastAPI
from fastapi.testclient import TestClient

from vhpc.client import ManagerClient
from vhpc.errors import BootError, ClusterStateError
from vhpc.models import (
    AddNodesRequest,
    AddUserRequest,
    DownResult,
    Event,
    Fault,
    FaultKind,
    FaultRequest,
    Health,
    Job,
    JobList,
    LogLine,
    MetricSeries,
    NodeInfo,
    NodeStatus,
    Phase,
    Progress,
    Status,
    UserInfo,
    UserList,
)
from vhpc.spec.grow import NodeExistsError, NoSuchNodeError
from vhpc.web.app import create_app
from vhpc.web.auth import ASGIApp, Receive, Scope, Send
from vhpc.web.listen import TcpAccess, allowed_hosts

T0 = 1_800_000_000.0


def node_info(name: str, role: str = "compute") -> NodeInfo:
    """A node record as the inventory would give it."""
    return NodeInfo(name=name, role=role, ip="10.201.0.10", cpuset="0", cpus=1,
                    memory=125 << 20, features=[], state="up", slurm_state="idle")


class FakeManagerAPI:
    """Implements the ManagerAPI protocol without a cluster."""

    def __init__(self) -> None:
        self.nodes_by_name = {n: node_info(n) for n in ("compute0", "compute1")}
        self.nodes_by_name["slurm"] = node_info("slurm", "controller")
        self.phase = Phase.READY
        self.calls: list[tuple[object, ...]] = []
        self.stopped = False
        self.fault_list: list[Fault] = []

    @property
    def name(self) -> str:
        return "fake"

    @property
    def stream_interval(self) -> float:
        return 0.2

    def health(self) -> Health:
        return Health(cluster="fake", phase=self.phase, uptime=1.0,
                      dashboard="http://127.0.0.1:8123/?token=good")

    def status(self, max_age: float = 0.0, with_metrics: bool = False) -> Status:
        nodes = [NodeStatus(name=n.name, role=n.role, ip=n.ip, cpuset=n.cpuset,
                            memory_limit=n.memory, memory_usage=1 << 20,
                            slurm_state=n.slurm_state,
                            cpu_percent=12.5 if with_metrics else None)
                 for n in self.nodes_by_name.values()]
        return Status(cluster="fake", phase=self.phase,
                      progress=Progress(message="ready", done=len(nodes), total=len(nodes)),
                      subnet="10.201.0.0/24", bridge="vhfake", partition="vhpc",
                      state_dir="/var/lib/vhpc/fake", slurm_conf="/x/slurm.conf",
                      cgroup_version=1, host_cpus=[0, 1],
                      dashboard="http://127.0.0.1:8123/?token=good", uptime=1.0,
                      nodes=nodes, jobs=[Job(id="1", name="j", user="cluser",
                                             state="RUNNING", nodes="compute0", time="0:01")])

    def events(self, since: float = 0.0, limit: int = 200) -> list[Event]:
        self.calls.append(("events", since, limit))
        return [Event(id=2, ts=T0 + 1, kind="daemon_restart", node="compute0",
                      level="warning", message="restarting slurmd"),
                Event(id=1, ts=T0, kind="cluster_up", message="cluster fake is up")]

    def nodes(self) -> list[NodeInfo]:
        return list(self.nodes_by_name.values())

    def add_nodes(self, request: AddNodesRequest) -> list[NodeInfo]:
        self.calls.append(("add", request))
        names = request.names or [f"compute{len(self.nodes_by_name) + i}"
                                  for i in range(max(1, request.count))]
        for name in names:
            if name.startswith("bad"):
                raise BootError(f"slurmd on {name} did not register within 60s; rolled back",
                                fix="see 'vhpc logs --node " + name + "'")
            if name in self.nodes_by_name:
                raise NodeExistsError(f"node {name!r} is already in the cluster")
        added = [node_info(n) for n in names]
        self.nodes_by_name.update({n.name: n for n in added})
        return added

    def remove_nodes(self, names: list[str], drain: bool = False) -> list[str]:
        self.calls.append(("remove", names, drain))
        for name in names:
            if name not in self.nodes_by_name:
                raise NoSuchNodeError(f"cluster 'fake' has no node {name!r}",
                                      fix="'vhpc node ls' lists them")
        for name in names:
            del self.nodes_by_name[name]
        return []

    def stop_node(self, name: str) -> None:
        self.calls.append(("stop", name))
        if name == "crash":
            raise RuntimeError("a bug in the fake")

    def start_node(self, name: str, wait: bool = True) -> None:
        self.calls.append(("start", name, wait))
        if self.phase is not Phase.READY:
            raise ClusterStateError("cluster 'fake' is stopping")

    def down(self, keep_logs: bool = False) -> DownResult:
        self.phase = Phase.STOPPING
        self.stopped = True
        return DownResult(ok=True, logs="/kept" if keep_logs else "")

    def users(self) -> UserList:
        return UserList(users=[UserInfo(name="cluser", account="default", uid=2000,
                                        home="/home/cluser", default=True)], accounting=True)

    def add_user(self, request: AddUserRequest) -> UserInfo:
        self.calls.append(("add_user", request.name, request.account))
        return UserInfo(name=request.name, account=request.account, uid=2001,
                        home=f"/home/{request.name}")

    def jobs(self, finished: bool = False, since: float = 0.0, limit: int = 500) -> JobList:
        self.calls.append(("jobs", finished, since, limit))
        done = [Job(id="1", name="done", user="cluser", state="COMPLETED", exit_code="0:0",
                    elapsed=3, max_rss=80 << 20, source="sacct")] if finished else []
        return JobList(jobs=[Job(id="2", name="live", user="cluser", state="RUNNING",
                                 source="squeue"), *done][:limit], accounting=True)

    def metrics(self, metric: str, since: float, node: str | None) -> list[MetricSeries]:
        self.calls.append(("metrics", metric, since, node))
        return [MetricSeries(node=node or "_total", metric=metric,
                             points=[(T0, 1.0), (T0 + 5, 2.0)])]

    def logs(self, q: str | None, node: str | None, service: str | None, level: str | None,
             since: float | None, limit: int) -> list[LogLine]:
        self.calls.append(("logs", q, node, service, level, since, limit))
        return [LogLine(id=7, ts=T0, node="compute0", service="slurmd", level="info",
                        message="slurmd started")]

    def prometheus(self) -> bytes:
        return b"# HELP vhpc_up 1\nvhpc_up 1\n"

    def add_fault(self, request: FaultRequest) -> list[Fault]:
        self.calls.append(("add_fault", request.kind.value, tuple(request.nodes)))
        if any(n not in self.nodes_by_name for n in request.nodes):
            raise NoSuchNodeError(f"cluster 'fake' has no node {request.nodes[0]!r}")
        made = [Fault(id=f"f{len(self.fault_list) + i + 1}", kind=request.kind, nodes=[n],
                      since=T0, description=f"{n} {request.kind.value}")
                for i, n in enumerate(request.nodes)]
        self.fault_list += made
        return made

    def faults(self) -> list[Fault]:
        return list(self.fault_list)

    def clear_faults(self, fault_id: str | None = None, kind: FaultKind | None = None,
                     nodes: list[str] | None = None) -> list[Fault]:
        self.calls.append(("clear_faults", fault_id, kind, tuple(nodes or ())))
        cleared = [f for f in self.fault_list if fault_id in (None, f.id)
                   and kind in (None, f.kind) and (not nodes or set(nodes) & set(f.nodes))]
        self.fault_list = [f for f in self.fault_list if f not in cleared]
        return cleared

    def log_cursor(self) -> int | None:
        return None if self.stopped else 6

    def wait_logs(self, after_id: int, timeout: float) -> list[LogLine]:
        time.sleep(min(timeout, 0.05))
        self.stopped = True  # one round of the stream, then it ends
        return [LogLine(id=7, ts=T0, node="compute0", service="slurmd", level="info",
                        message="slurmd started")]


# -- the real app around the fake, as the manager serves it ------------------------------
TOKEN = "good-token"
PORT = 8123
TCP_BASE = f"http://127.0.0.1:{PORT}"


def make_app(api: FakeManagerAPI, max_body: int = 1024 * 1024) -> FastAPI:
    """create_app as the manager calls it, listening on 127.0.0.1:PORT."""
    access = TcpAccess(TOKEN, allowed_hosts("127.0.0.1", PORT))
    return create_app(api, access, on_down=lambda: None, max_body=max_body)


def unix_app(app: ASGIApp) -> ASGIApp:
    """The app as it sees a request over the unix socket (uvicorn: no server port)."""

    async def over_unix(scope: Scope, receive: Receive, send: Send) -> None:
        await app(dict(scope, server=None), receive, send)

    return over_unix


def tcp_client(app: FastAPI, token: str | None = TOKEN) -> TestClient:
    """A TCP client of the app (Host 127.0.0.1:PORT), with the token unless None."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return TestClient(app, base_url=TCP_BASE, headers=headers,
                      raise_server_exceptions=False)


def unix_client(app: FastAPI) -> TestClient:
    """A client of the app over the (simulated) unix socket: no token, no Host check."""
    return TestClient(unix_app(app), base_url="http://vhpc", raise_server_exceptions=False)


class ViaTestClient(httpx.BaseTransport):
    """An httpx transport that hands requests to a TestClient (ManagerClient over the app)."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send one request through the ASGI app."""
        answer = self.client.request(request.method, request.url.raw_path.decode(),
                                     headers=dict(request.headers), content=request.read())
        return httpx.Response(answer.status_code, headers=answer.headers,
                              content=answer.content)


def manager_client(app: FastAPI) -> ManagerClient:
    """vhpc's own client, talking to the app as over the unix socket."""
    return ManagerClient("fake", transport=ViaTestClient(unix_client(app)))
