"""The error contract end to end: the manager app's error bodies, and vhpc's own client
turning them back into the same exception classes."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.unit.fake_manager_api import FakeManagerAPI, make_app, manager_client, unix_client
from vhpc.client import raise_for_error
from vhpc.errors import (
    BootError,
    ClusterStateError,
    CommandError,
    EndpointNotFoundError,
    InternalError,
    RequestError,
    UserError,
    VhpcError,
    error_from_wire,
    registry,
)
from vhpc.models import ErrorBody
from vhpc.spec.grow import NodeExistsError, NoSuchNodeError


def body_of(response: httpx.Response) -> tuple[int, str, str, str]:
    """(status, type, message, fix) of an error response."""
    error = ErrorBody.model_validate_json(response.content).error
    return response.status_code, error.type, error.message, error.fix


def test_error_bodies_and_status_codes() -> None:
    client = unix_client(make_app(FakeManagerAPI()))
    assert body_of(client.delete("/api/v1/nodes", params={"name": "nope"})) == (
        404, "NoSuchNodeError", "cluster 'fake' has no node 'nope'",
        "'vhpc node ls' lists them")
    assert body_of(client.post("/api/v1/nodes", json={"names": ["compute0"]}))[:2] == (
        409, "NodeExistsError")
    status, kind, message, fix = body_of(client.post("/api/v1/nodes",
                                                     json={"names": ["bad1"]}))
    assert (status, kind) == (500, "BootError")
    assert message.startswith("slurmd on bad1 did not register") and "logs" in fix
    status, kind, message, _ = body_of(client.post("/api/v1/nodes/crash/stop"))
    assert (status, kind, message) == (500, "InternalError", "RuntimeError: a bug in the fake")


@pytest.mark.parametrize(("request_args", "where"), [
    (("POST", "/api/v1/nodes", {"json": {"count": -1}}), "count"),
    (("POST", "/api/v1/nodes", {"json": {"count": "many"}}), "count"),
    (("POST", "/api/v1/nodes", {"json": {"nodes": 3}}), "nodes"),
    (("POST", "/api/v1/nodes", {"content": b"{not json", "headers": {
        "content-type": "application/json"}}), "body"),
    (("DELETE", "/api/v1/nodes", {}), "name"),
    (("GET", "/api/v1/metrics", {"params": {"metric": "bogus"}}), "bogus"),
    (("GET", "/api/v1/logs", {"params": {"limit": 0}}), "limit"),
])
def test_invalid_requests_are_400_request_errors(
        request_args: tuple[str, str, dict[str, Any]], where: str) -> None:
    method, path, kwargs = request_args
    client = unix_client(make_app(FakeManagerAPI()))
    status, kind, message, _ = body_of(client.request(method, path, **kwargs))
    assert (status, kind) == (400, "RequestError")
    assert where in message


def test_unknown_endpoints_and_methods() -> None:
    client = unix_client(make_app(FakeManagerAPI()))
    assert body_of(client.get("/api/v1/nope"))[:2] == (404, "EndpointNotFoundError")
    assert body_of(client.post("/api/v1/nodes/remove", json={"names": ["x"]}))[:2] == (
        404, "EndpointNotFoundError")  # the old remove endpoint is gone
    assert body_of(client.put("/api/v1/nodes"))[:2] == (405, "RequestError")


def test_the_client_raises_the_managers_exception_classes() -> None:
    client = manager_client(make_app(FakeManagerAPI()))
    with pytest.raises(NoSuchNodeError, match="has no node 'nope'") as no_node:
        client.remove_nodes(["nope"])
    assert no_node.value.fix == "'vhpc node ls' lists them"
    assert no_node.value.exit_code == 2
    with pytest.raises(NodeExistsError):
        client.add_nodes(["compute1"])
    with pytest.raises(BootError, match=r"^slurmd on bad1 did not register") as boot:
        client.add_nodes(["bad1"])
    assert "Internal Server Error" not in str(boot.value)
    with pytest.raises(InternalError, match="RuntimeError: a bug in the fake"):
        client.stop_node("crash")
    with pytest.raises(RequestError, match="count"):
        client.add_nodes(count=-3)
    with pytest.raises(EndpointNotFoundError):
        client.request("GET", "/nope")


def test_the_client_parses_documents_into_models() -> None:
    client = manager_client(make_app(FakeManagerAPI()))
    assert client.ping().phase == "ready"
    assert client.status().progress.message == "ready"
    assert [n.name for n in client.nodes()] == ["compute0", "compute1", "slurm"]
    assert client.add_nodes(["compute5"])[0].name == "compute5"
    assert client.remove_nodes(["compute5", "compute0"]) == []
    assert client.events()[0].kind == "daemon_restart"
    assert client.logs(q="x")[0].service == "slurmd"
    assert client.metrics("cpu")[0].points == [(1_800_000_000.0, 1.0),
                                                (1_800_000_005.0, 2.0)]
    client.stop_node("compute1")
    client.start_node("compute1", wait=False)
    assert client.down().ok


def test_a_state_error_keeps_its_class() -> None:
    api = FakeManagerAPI()
    client = manager_client(make_app(api))
    api.phase = api.phase.STOPPING
    with pytest.raises(ClusterStateError, match="stopping"):
        client.start_node("compute0")


def test_responses_outside_the_contract_still_give_one_line() -> None:
    plain_500 = httpx.Response(500, text="Internal Server Error\nmore")
    with pytest.raises(InternalError, match=r"^HTTP 500: Internal Server Error$"):
        raise_for_error(plain_500)
    with pytest.raises(UserError, match="HTTP 404"):
        raise_for_error(httpx.Response(404, json={"detail": "Not Found"}))
    raise_for_error(httpx.Response(200, json={}))


def test_error_from_wire_rebuilds_every_known_class() -> None:
    for name, cls in registry().items():
        err = error_from_wire(name, "one line", "do this")
        assert type(err) is cls and err.message == "one line" and err.fix == "do this"
    command = error_from_wire("CommandError", "command 'ip' failed (exit 2): x")
    assert isinstance(command, CommandError) and str(command).startswith("command 'ip'")
    assert type(error_from_wire("NoSuchThing", "m")) is UserError
    assert type(error_from_wire("NoSuchThing", "m", server_error=True)) is InternalError
    assert isinstance(error_from_wire("VhpcError", "m"), VhpcError)
