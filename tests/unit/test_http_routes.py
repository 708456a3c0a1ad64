"""Every route of the real manager app (create_app) against a fake ManagerAPI, no root."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel

from tests.unit.fake_manager_api import FakeManagerAPI, make_app, tcp_client, unix_client
from vhpc.models import (
    AddNodesRequest,
    AddNodesResult,
    DownResult,
    EventList,
    Health,
    JobList,
    LogList,
    MetricsResult,
    NodeActionResult,
    NodeList,
    RemoveNodesResult,
    Status,
)

ROUTES: list[tuple[str, str, dict[str, object], type[BaseModel]]] = [
    ("GET", "/api/v1/health", {}, Health),
    ("GET", "/api/v1/status", {"params": {"max_age": 10}}, Status),
    ("GET", "/api/v1/events", {"params": {"since": 60, "limit": 5}}, EventList),
    ("GET", "/api/v1/nodes", {}, NodeList),
    ("GET", "/api/v1/jobs", {"params": {"all": True, "since": 5, "limit": 10}}, JobList),
    ("POST", "/api/v1/nodes", {"json": {"names": ["compute7"], "memory": "250M"}},
     AddNodesResult),
    ("DELETE", "/api/v1/nodes", {"params": {"name": ["compute0", "compute1"]}},
     RemoveNodesResult),
    ("POST", "/api/v1/nodes/compute0/stop", {}, NodeActionResult),
    ("POST", "/api/v1/nodes/compute0/start", {"params": {"wait": False}}, NodeActionResult),
    ("GET", "/api/v1/metrics", {"params": {"metric": "cpu", "node": "compute0"}},
     MetricsResult),
    ("GET", "/api/v1/logs", {"params": {"q": "slurmd", "level": "info"}}, LogList),
    ("POST", "/api/v1/down", {}, DownResult),
]


@pytest.mark.parametrize(("method", "path", "kwargs", "model"), ROUTES,
                         ids=[f"{r[0]} {r[1]}" for r in ROUTES])
@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_every_route_answers_its_model(method: str, path: str, kwargs: dict[str, object],
                                       model: type[BaseModel], transport: str) -> None:
    app = make_app(FakeManagerAPI())
    client = unix_client(app) if transport == "unix" else tcp_client(app)
    response = client.request(method, path, **kwargs)  # type: ignore[arg-type]
    assert response.status_code == 200, response.text
    model.model_validate(response.json())


def test_routes_pass_their_arguments_to_the_api() -> None:
    api = FakeManagerAPI()
    client = unix_client(make_app(api))
    client.post("/api/v1/nodes", json={"count": 2, "cpus": 1, "features": ["gpu"]})
    client.delete("/api/v1/nodes", params={"name": ["compute0"], "drain": True})
    client.get("/api/v1/logs", params={"node": "compute1", "service": "slurmd", "since": 30})
    client.get("/api/v1/metrics", params={"metric": "rx", "since": 120})
    client.post("/api/v1/nodes/compute1/start", params={"wait": False})
    assert api.calls == [
        ("add", AddNodesRequest(count=2, cpus=1, features=["gpu"])),
        ("remove", ["compute0"], True),
        ("logs", None, "compute1", "slurmd", None, 30.0, 200),
        ("metrics", "rx", 120.0, None),
        ("start", "compute1", False),
    ]


def test_status_document_is_ready_with_its_progress() -> None:
    doc = Status.model_validate(unix_client(make_app(FakeManagerAPI())).get(
        "/api/v1/status").json())
    assert doc.phase == "ready" and doc.progress.message == "ready"
    assert doc.jobs[0].state == "RUNNING"


def test_events_carry_their_kind_as_a_field() -> None:
    events = EventList.model_validate(unix_client(make_app(FakeManagerAPI())).get(
        "/api/v1/events").json()).events
    assert [e.kind for e in events] == ["daemon_restart", "cluster_up"]
    assert events[0].message == "restarting slurmd"  # no "kind: " prefix


def test_one_remove_endpoint_and_the_models_in_the_openapi_schema() -> None:
    schema = unix_client(make_app(FakeManagerAPI())).get("/openapi.json").json()
    paths = schema["paths"]
    assert "/api/v1/nodes/remove" not in paths
    assert "/api/v1/nodes/{name}" not in paths
    assert set(paths["/api/v1/nodes"]) == {"get", "post", "delete"}
    components = set(schema["components"]["schemas"])
    assert {"Status", "NodeStatus", "NodeInfo", "Event", "LogLine", "MetricSeries", "Health",
            "AddNodesRequest", "AddNodesResult", "RemoveNodesResult", "ErrorBody"} <= components
    ok = paths["/api/v1/status"]["get"]["responses"]
    assert ok["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/Status")
    assert ok["404"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")


def test_prometheus_and_the_dashboard_page() -> None:
    client = tcp_client(make_app(FakeManagerAPI()))
    metrics = client.get("/metrics")
    assert metrics.status_code == 200 and b"vhpc_up 1" in metrics.content
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert client.get("/static/app.js").status_code == 200


def test_stream_sends_a_status_then_log_lines() -> None:
    client = tcp_client(make_app(FakeManagerAPI()))
    with client.stream("GET", "/api/v1/stream") as response:
        assert response.status_code == 200
        text = "".join(response.iter_text())
    blocks = [b for b in text.split("\n\n") if b.startswith("event:")]
    kinds = [b.split("\n")[0] for b in blocks]
    assert kinds == ["event: status", "event: log"]
    status = Status.model_validate_json(blocks[0].split("data: ", 1)[1])
    assert status.nodes[0].cpu_percent == 12.5  # the sampler's numbers are merged
    assert json.loads(blocks[1].split("data: ", 1)[1])[0]["message"] == "slurmd started"


def test_the_real_api_object_is_ready_when_made_and_keeps_event_kinds() -> None:
    from types import SimpleNamespace
    from typing import Any

    from vhpc.api import ClusterAPI
    from vhpc.cluster.events import EventBus

    bus = EventBus()
    bus.emit("cluster_up", "cluster c is up")
    bus.emit("daemon_restart", "restarting slurmd@compute1", "compute1", "warning")
    cluster: Any = SimpleNamespace(spec=SimpleNamespace(name="c", nodes=[1, 2, 3]),
                                   events=bus)
    api = ClusterAPI(cluster, inventory=SimpleNamespace(), observer=None,  # type: ignore[arg-type]
                     dashboard_url="http://127.0.0.1:1/?token=t")
    assert api.progress().model_dump() == {"message": "ready", "done": 3, "total": 3}
    assert api.health().phase == "ready" and api.health().dashboard.endswith("token=t")
    events = api.events()
    assert [(e.kind, e.node) for e in events] == [("daemon_restart", "compute1"),
                                                  ("cluster_up", "")]
    assert events[0].message == "restarting slurmd@compute1"
    api.phase = api.phase.STOPPING
    assert api.progress().message == "stopping"
