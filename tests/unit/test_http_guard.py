"""The manager app's guard: token and Host header on TCP, none on the unix socket, and
the request body limit, all answering with the error contract."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.unit.fake_manager_api import (
    PORT,
    TOKEN,
    FakeManagerAPI,
    make_app,
    tcp_client,
    unix_client,
)
from vhpc.models import ErrorBody
from vhpc.web.auth import COOKIE
from vhpc.web.listen import allowed_hosts

READS = ["/api/v1/status", "/api/v1/events", "/api/v1/logs", "/api/v1/metrics",
         "/api/v1/nodes", "/api/v1/health", "/api/v1/stream", "/metrics", "/openapi.json"]


def error_of(response: object) -> tuple[int, str]:
    """Status code and error type of a refused request (checks the body is the contract)."""
    body = ErrorBody.model_validate_json(response.content)  # type: ignore[attr-defined]
    assert body.error.message and "\n" not in body.error.message
    return response.status_code, body.error.type  # type: ignore[attr-defined]


@pytest.mark.parametrize("path", READS)
def test_reads_over_tcp_need_the_token(path: str) -> None:
    app = make_app(FakeManagerAPI())
    assert error_of(tcp_client(app, token=None).get(path)) == (401, "AuthError")
    assert error_of(tcp_client(app, token="nope").get(path)) == (403, "TokenRejectedError")


def test_writes_over_tcp_need_the_token() -> None:
    api = FakeManagerAPI()
    client = tcp_client(make_app(api), token=None)
    for method, path in (("POST", "/api/v1/down"), ("DELETE", "/api/v1/nodes?name=compute0"),
                         ("POST", "/api/v1/nodes"), ("POST", "/api/v1/nodes/compute0/stop")):
        assert error_of(client.request(method, path)) == (401, "AuthError")
    assert not api.stopped and "compute0" in api.nodes_by_name


def test_the_token_as_header_query_or_cookie() -> None:
    app = make_app(FakeManagerAPI())
    anonymous = tcp_client(app, token=None)
    assert anonymous.get(f"/api/v1/status?token={TOKEN}").status_code == 200
    assert anonymous.get("/api/v1/status",
                         headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    page = anonymous.get(f"/?token={TOKEN}")  # the URL `vhpc up` prints
    assert page.status_code == 200 and COOKIE in page.headers["set-cookie"]
    assert "HttpOnly" in page.headers["set-cookie"]
    assert anonymous.get("/api/v1/status").status_code == 200  # the cookie now


def test_the_page_itself_needs_no_token_but_gets_no_cookie_for_a_bad_one() -> None:
    anonymous = tcp_client(make_app(FakeManagerAPI()), token=None)
    assert anonymous.get("/").status_code == 200
    assert anonymous.get("/static/app.js").status_code == 200
    assert "set-cookie" not in anonymous.get("/?token=nope").headers


def test_the_unix_socket_needs_no_token_and_no_host() -> None:
    client = unix_client(make_app(FakeManagerAPI()))
    for path in READS:
        assert client.get(path, headers={"Host": "evil.example"}).status_code == 200, path


@pytest.mark.parametrize("host", ["evil.example", f"evil.example:{PORT}", "127.0.0.1:9",
                                  f"10.0.0.1:{PORT}", ""])
def test_tcp_refuses_foreign_host_headers(host: str) -> None:
    client = tcp_client(make_app(FakeManagerAPI()))
    response = client.get("/api/v1/status", headers={"Host": host})
    assert error_of(response) == (421, "HostNotAllowedError")
    assert error_of(client.get("/", headers={"Host": host}))[0] == 421


@pytest.mark.parametrize("host", [f"127.0.0.1:{PORT}", f"localhost:{PORT}",
                                  f"LOCALHOST:{PORT}", f"[::1]:{PORT}"])
def test_tcp_accepts_the_loopback_names(host: str) -> None:
    client = tcp_client(make_app(FakeManagerAPI()))
    assert client.get("/api/v1/health", headers={"Host": host}).status_code == 200


def test_wildcard_listener_accepts_the_hosts_name() -> None:
    import socket

    hosts = allowed_hosts("0.0.0.0", 80)
    assert f"{socket.gethostname().lower()}:80" in hosts
    assert "0.0.0.0:80" in hosts and "localhost:80" in hosts
    assert "evil.example:80" not in hosts


@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_a_body_over_the_limit_is_refused_before_the_route(transport: str) -> None:
    api = FakeManagerAPI()
    app = make_app(api, max_body=1000)
    client = unix_client(app) if transport == "unix" else tcp_client(app)
    big = b'{"names": ["' + b"x" * 2000 + b'"]}'
    response = client.post("/api/v1/nodes", content=big,
                           headers={"content-type": "application/json"})
    assert error_of(response) == (413, "RequestTooLargeError")
    assert api.calls == []


def test_a_chunked_body_over_the_limit_is_refused_too() -> None:
    api = FakeManagerAPI()
    client = unix_client(make_app(api, max_body=1000))

    def chunks() -> Iterator[bytes]:
        yield b'{"names": ["'
        for _ in range(10):
            yield b"x" * 500
        yield b'"]}'

    response = client.post("/api/v1/nodes", content=chunks(),
                           headers={"content-type": "application/json"})
    assert error_of(response) == (413, "RequestTooLargeError")
    assert api.calls == []


def test_a_body_under_the_limit_reaches_the_route() -> None:
    api = FakeManagerAPI()
    client = unix_client(make_app(api, max_body=1000))
    assert client.post("/api/v1/nodes", json={"names": ["compute9"]}).status_code == 200
    assert "compute9" in api.nodes_by_name
