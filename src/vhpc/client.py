"""HTTP client of a cluster's manager over its unix socket (used by the CLI and Python API)."""

from __future__ import annotations

from typing import Any

import httpx

from vhpc.errors import ManagerUnavailableError, UserError, VhpcError
from vhpc.spec.paths import ClusterPaths


class ManagerClient:
    """Talks to one cluster's manager."""

    def __init__(self, cluster: str, timeout: float = 30.0) -> None:
        self.cluster = cluster
        self.paths = ClusterPaths.of(cluster)
        self._http = httpx.Client(
            transport=httpx.HTTPTransport(uds=str(self.paths.manager_socket)),
            base_url="http://vhpc", timeout=timeout,
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def request(self, method: str, path: str, timeout: float | None = None,
                **kwargs: Any) -> Any:
        """One API call; raises ManagerUnavailableError if nobody answers."""
        try:
            if timeout is not None:
                kwargs["timeout"] = timeout
            response = self._http.request(method, f"/api/v1{path}", **kwargs)
        except (httpx.ConnectError, httpx.RemoteProtocolError, FileNotFoundError,
                ConnectionRefusedError) as err:
            raise ManagerUnavailableError(
                f"the manager of cluster {self.cluster!r} does not answer "
                f"({type(err).__name__}): is the cluster up? ('vhpc ls')"
            ) from err
        if response.status_code >= 400:
            detail = _detail(response)
            raise (VhpcError if response.status_code >= 500 else UserError)(detail)
        return response.json()

    def ping(self) -> dict[str, Any]:
        """Whether the manager answers, and its phase (runs no Slurm command)."""
        result: dict[str, Any] = self.request("GET", "/health", timeout=10.0)
        return result

    def status(self) -> dict[str, Any]:
        """The cluster's status document."""
        result: dict[str, Any] = self.request("GET", "/status")
        return result

    def events(self, since: float = 0.0) -> list[dict[str, Any]]:
        """Recent events."""
        result: list[dict[str, Any]] = self.request("GET", "/events",
                                                    params={"since": since})["events"]
        return result

    def metrics(self, metric: str = "memory", since: float = 600.0,
                node: str | None = None) -> list[dict[str, Any]]:
        """Sampled series: [{"node","metric","points": [[ts, value], ...]}]."""
        params: dict[str, Any] = {"metric": metric, "since": since}
        if node:
            params["node"] = node
        result: list[dict[str, Any]] = self.request("GET", "/metrics", params=params)["series"]
        return result

    def logs(self, q: str | None = None, node: str | None = None, service: str | None = None,
             level: str | None = None, since: float | None = None,
             limit: int = 200) -> list[dict[str, Any]]:
        """Central log rows, newest first: {"id","ts","node","service","level","message"}."""
        params = {k: v for k, v in {"q": q, "node": node, "service": service, "level": level,
                                    "since": since, "limit": limit}.items() if v}
        result: list[dict[str, Any]] = self.request("GET", "/logs", params=params)["logs"]
        return result

    def has_endpoint(self, method: str, path: str) -> bool:
        """True if this manager serves `method /api/v1<path>` (from its OpenAPI document).

        Lets a newer client tell "the endpoint is missing" (an older manager) from a 404
        the endpoint itself returned. Path parameters match by template, e.g. /nodes/{name}.
        """
        try:
            doc = self._http.get("/openapi.json").json()
        except (httpx.HTTPError, FileNotFoundError, ConnectionRefusedError, ValueError):
            return False
        paths = doc.get("paths", {}) if isinstance(doc, dict) else {}
        return method.lower() in paths.get(f"/api/v1{path}", {})

    def nodes(self) -> list[dict[str, Any]]:
        """Every node with its registry and Slurm state."""
        result: list[dict[str, Any]] = self.request("GET", "/nodes")["nodes"]
        return result

    def add_nodes(self, names: list[str] | None = None, count: int = 0,
                  memory: str | None = None, cpus: int | None = None,
                  cpuset: str | None = None, features: list[str] | None = None,
                  wait: bool = True) -> list[dict[str, Any]]:
        """Add compute nodes; returns their records (once idle, if `wait`)."""
        body = {"names": names or [], "count": count, "memory": memory, "cpus": cpus,
                "cpuset": cpuset, "features": features or [], "wait": wait}
        result: list[dict[str, Any]] = self.request("POST", "/nodes", json=body,
                                                    timeout=600.0)["added"]
        return result

    def remove_nodes(self, names: list[str], drain: bool = False) -> list[str]:
        """Remove compute nodes (waiting for their jobs with `drain`); returns leftovers."""
        result: list[str] = self.request("POST", "/nodes/remove",
                                         json={"names": names, "drain": drain},
                                         timeout=86400.0 if drain else 300.0)["leftovers"]
        return result

    def stop_node(self, name: str) -> None:
        """Stop a node (DOWN in Slurm, out of DNS)."""
        self.request("POST", f"/nodes/{name}/stop", timeout=120.0)

    def start_node(self, name: str, wait: bool = True) -> None:
        """Start a stopped node again."""
        self.request("POST", f"/nodes/{name}/start", params={"wait": wait}, timeout=120.0)

    def down(self) -> dict[str, Any]:
        """Ask the manager to tear the cluster down (waits for it)."""
        result: dict[str, Any] = self.request("POST", "/down", timeout=120.0)
        return result


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip() or f"HTTP {response.status_code}"
    detail = body.get("detail", body) if isinstance(body, dict) else body
    if isinstance(detail, list):
        return "; ".join(f"{'.'.join(str(x) for x in d.get('loc', []))}: {d.get('msg')}"
                         for d in detail if isinstance(d, dict))
    return str(detail)
