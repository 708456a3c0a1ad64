"""HTTP client of a cluster's manager over its unix socket (used by the CLI and Python API).

Every answer is parsed into its model of :mod:`vhpc.models`; every error body
(``{"error": {"type", "message", "fix"}}``) is raised as the same exception class the
manager raised (:func:`vhpc.errors.error_from_wire`).
"""

from __future__ import annotations

from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from vhpc.errors import (
    InternalError,
    ManagerUnavailableError,
    UserError,
    VhpcError,
    error_from_wire,
)
from vhpc.models import (
    API_PREFIX,
    AddNodesRequest,
    AddNodesResult,
    AddUserRequest,
    ClearFaultsResult,
    DownResult,
    ErrorBody,
    Event,
    EventList,
    Fault,
    FaultList,
    Health,
    JobList,
    LogLine,
    LogList,
    MetricSeries,
    MetricsResult,
    NodeActionResult,
    NodeInfo,
    NodeList,
    RemoveNodesResult,
    Status,
    UserInfo,
    UserList,
)
from vhpc.spec.paths import ClusterPaths

M = TypeVar("M", bound=BaseModel)


def _load_error_classes() -> None:
    """Import the modules whose exceptions can come back over HTTP (for the registry)."""
    import vhpc.spec.grow  # noqa: F401  NoSuchNodeError, NodeExistsError


def raise_for_error(response: httpx.Response) -> None:
    """Raise the exception an error response carries (nothing for a 2xx/3xx)."""
    if response.status_code < 400:
        return
    try:
        body = ErrorBody.model_validate_json(response.content)
    except ValidationError:  # not the contract: a proxy, or a manager that predates it
        text = response.text.strip().splitlines()
        message = f"HTTP {response.status_code}: {text[0][:200] if text else 'no body'}"
        raise (InternalError if response.status_code >= 500 else UserError)(message) from None
    _load_error_classes()
    raise error_from_wire(body.error.type, body.error.message, body.error.fix,
                          server_error=response.status_code >= 500)


class ManagerClient:
    """Talks to one cluster's manager."""

    def __init__(self, cluster: str, timeout: float = 30.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.cluster = cluster
        self.paths = ClusterPaths.of(cluster)
        self._http = httpx.Client(
            transport=transport or httpx.HTTPTransport(uds=str(self.paths.manager_socket)),
            base_url="http://vhpc", timeout=timeout,
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def request(self, method: str, path: str, timeout: float | None = None,
                **kwargs: Any) -> Any:
        """One API call (path below /api/v1) returning the JSON body as is; raises the
        manager's error, or ManagerUnavailableError if nobody answers."""
        return self.send(method, path, timeout=timeout, **kwargs).json()

    def send(self, method: str, path: str, timeout: float | None = None,
             **kwargs: Any) -> httpx.Response:
        """One API call (path below /api/v1); the response, unless it is an error."""
        try:
            if timeout is not None:
                kwargs["timeout"] = timeout
            response = self._http.request(method, f"{API_PREFIX}{path}", **kwargs)
        except (httpx.ConnectError, httpx.RemoteProtocolError, FileNotFoundError,
                ConnectionRefusedError) as err:
            raise ManagerUnavailableError(
                f"the manager of cluster {self.cluster!r} does not answer "
                f"({type(err).__name__}): is the cluster up? ('vhpc ls')"
            ) from err
        raise_for_error(response)
        return response

    def call(self, model: type[M], method: str, path: str, timeout: float | None = None,
             **kwargs: Any) -> M:
        """One API call whose answer is parsed into `model`."""
        response = self.send(method, path, timeout=timeout, **kwargs)
        try:
            return model.model_validate_json(response.content)
        except ValidationError as err:
            raise VhpcError(f"the manager of cluster {self.cluster!r} answered {method} "
                            f"{path} with an unexpected document ({err.error_count()} "
                            "errors)", fix="upgrade vhpc, then 'vhpc manager restart'") from err

    def ping(self) -> Health:
        """Whether the manager answers, and its phase (runs no Slurm command)."""
        return self.call(Health, "GET", "/health", timeout=10.0)

    def status(self) -> Status:
        """The cluster's status document."""
        return self.call(Status, "GET", "/status")

    def events(self, since: float = 0.0, limit: int = 200) -> list[Event]:
        """Recent events, newest first (`since`: Unix time, or an age below 1e9)."""
        return self.call(EventList, "GET", "/events",
                         params={"since": since, "limit": limit}).events

    def metrics(self, metric: str = "memory", since: float = 600.0,
                node: str | None = None) -> list[MetricSeries]:
        """Sampled series of one metric (`since`: age in seconds)."""
        params: dict[str, Any] = {"metric": metric, "since": since}
        if node:
            params["node"] = node
        return self.call(MetricsResult, "GET", "/metrics", params=params).series

    def logs(self, q: str | None = None, node: str | None = None, service: str | None = None,
             level: str | None = None, since: float | None = None,
             limit: int = 200) -> list[LogLine]:
        """Central log lines, newest first."""
        params = {k: v for k, v in {"q": q, "node": node, "service": service, "level": level,
                                    "since": since, "limit": limit}.items() if v}
        return self.call(LogList, "GET", "/logs", params=params).logs

    def jobs(self, finished: bool = False, since: float = 0.0, limit: int = 500) -> JobList:
        """Jobs, newest first: live ones; with `finished`, ended ones too."""
        return self.call(JobList, "GET", "/jobs", timeout=90.0,
                         params={"all": finished, "since": since, "limit": limit})

    def nodes(self) -> list[NodeInfo]:
        """Every node with its registry and Slurm state."""
        return self.call(NodeList, "GET", "/nodes").nodes

    def add_nodes(self, names: list[str] | None = None, count: int = 0,
                  memory: str | None = None, cpus: int | None = None,
                  cpuset: str | None = None, features: list[str] | None = None,
                  wait: bool = True, gpus: str = "", group: str = "") -> list[NodeInfo]:
        """Add compute nodes; returns their records (once idle, if `wait`).

        The request is checked by the manager, not here, so a bad value comes back as
        the manager's RequestError like any other.
        """
        body = AddNodesRequest.model_construct(
            names=names or [], count=count, memory=memory, cpus=cpus, cpuset=cpuset,
            features=features or [], wait=wait, gpus=gpus, group=group)
        return self.call(AddNodesResult, "POST", "/nodes", content=body.model_dump_json(),
                         headers={"content-type": "application/json"}, timeout=600.0).added

    def users(self) -> UserList:
        """The cluster's users and whether accounting is on."""
        return self.call(UserList, "GET", "/users")

    def add_user(self, name: str, account: str = "default",
                 new_account: bool = False) -> UserInfo:
        """Add a cluster user at run time (checked by the manager)."""
        body = AddUserRequest.model_construct(name=name, account=account,
                                              new_account=new_account)
        return self.call(UserInfo, "POST", "/users", content=body.model_dump_json(),
                         headers={"content-type": "application/json"}, timeout=120.0)

    def remove_nodes(self, names: list[str], drain: bool = False) -> list[str]:
        """Remove compute nodes (waiting for their jobs with `drain`); returns leftovers."""
        return self.call(RemoveNodesResult, "DELETE", "/nodes",
                         params={"name": names, "drain": drain},
                         timeout=86400.0 if drain else 300.0).leftovers

    def stop_node(self, name: str) -> None:
        """Stop a node (DOWN in Slurm, out of DNS)."""
        self.call(NodeActionResult, "POST", f"/nodes/{name}/stop", timeout=120.0)

    def start_node(self, name: str, wait: bool = True) -> None:
        """Start a stopped node again."""
        self.call(NodeActionResult, "POST", f"/nodes/{name}/start", params={"wait": wait},
                  timeout=120.0)

    def add_fault(self, kind: str, nodes: list[str] | None = None,
                  peers: list[str] | None = None, percent: float | None = None,
                  rate: str = "", delay_ms: int | None = None, daemon: str = "") -> list[Fault]:
        """Inject a fault (partition, loss, rate, delay, freeze, kill); the faults made
        (one per node for node faults). Checked by the manager (one-line errors)."""
        body = {"kind": kind, "nodes": nodes or [], "peers": peers or [], "percent": percent,
                "rate": rate, "delay_ms": delay_ms, "daemon": daemon}
        return self.call(FaultList, "POST", "/faults", json=body, timeout=120.0).faults

    def list_faults(self) -> list[Fault]:
        """The active faults, oldest first."""
        return self.call(FaultList, "GET", "/faults").faults

    def clear_faults(self, fault_id: str | None = None, kind: str | None = None,
                     nodes: list[str] | None = None) -> list[Fault]:
        """Undo faults: one by id, those of a kind and/or touching nodes, or every one."""
        params: dict[str, Any] = {"id": fault_id, "kind": kind, "node": nodes or None}
        return self.call(ClearFaultsResult, "DELETE", "/faults", timeout=120.0,
                         params={k: v for k, v in params.items() if v}).cleared

    def down(self, keep_logs: bool = False) -> DownResult:
        """Ask the manager to tear the cluster down (waits for it), keeping its logs if
        asked."""
        return self.call(DownResult, "POST", "/down", timeout=120.0,
                         params={"keep_logs": "true"} if keep_logs else None)
