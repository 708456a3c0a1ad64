"""Observability against a real cluster: sampler, central logs, /metrics, dashboard, API
input validation and the TCP token."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.integration.helpers import (
    CHROMIUM,
    STATE_ROOT,
    launch_chromium,
    leftovers,
    vhpc,
    wait_until,
)

pytestmark = pytest.mark.privileged

CLUSTER = "t5a"
COMPUTES = ("compute0", "compute1")


def _base() -> str:
    port = (STATE_ROOT / CLUSTER / "run" / "dashboard.port").read_text().strip()
    return f"http://127.0.0.1:{port}"


def _token() -> str:
    return (STATE_ROOT / CLUSTER / "run" / "token").read_text().strip()


def _auth() -> dict[str, str]:
    """The header every TCP request needs (reads too)."""
    return {"Authorization": f"Bearer {_token()}"}


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    vhpc("-c", CLUSTER, "down", check=False)
    try:
        vhpc("-c", CLUSTER, "up", "-n", "2", "--sample-interval", "1")
        yield CLUSTER
    finally:
        vhpc("-c", CLUSTER, "down", check=False)
        assert leftovers(CLUSTER) == []


def test_token_file_private(cluster: str) -> None:
    token = STATE_ROOT / cluster / "run" / "token"
    assert token.stat().st_mode & 0o777 == 0o600
    assert len(_token()) >= 32


def memory_points(cluster: str, node: str) -> list[float]:
    """The observer's memory samples of `node` over the last 2 minutes."""
    doc = json.loads(vhpc("-c", cluster, "metrics", "--node", node, "--metric", "memory",
                          "--since", "2m", "--json").stdout)
    return [v for series in doc["series"] for _, v in series["points"]]


def test_memory_rise_seen(cluster: str) -> None:
    # a baseline first: `up` returns once the nodes are idle, and the observer starts
    # sampling a moment later (after the registry's fill)
    wait_until(lambda: bool(memory_points(cluster, "compute1")), 30, "a first memory sample")
    vhpc("-c", cluster, "exec", "slurm", "--user", "cluser", "--", "srun", "-w", "compute1",
         "/opt/vhpc/venv/bin/python", "-c",
         "import time; b=bytearray(60*2**20); time.sleep(4)")
    doc = json.loads(vhpc("-c", cluster, "metrics", "--node", "compute1", "--metric",
                          "memory", "--since", "2m", "--json").stdout)
    (series,) = doc["series"]
    values = [v for _, v in series["points"]]
    assert values and max(values) > min(values) + 40 * 2**20, values
    other = json.loads(vhpc("-c", cluster, "metrics", "--node", "compute0", "--metric",
                            "memory", "--since", "2m", "--json").stdout)["series"][0]
    assert max(v for _, v in other["points"]) < 40 * 2**20


def test_logs_find_slurmd_start(cluster: str) -> None:
    deadline = time.monotonic() + 15
    found: set[str] = set()
    while time.monotonic() < deadline and found != set(COMPUTES):
        rows = json.loads(vhpc("-c", cluster, "logs", "--service", "slurmd", "--grep",
                               "slurmd started", "--json").stdout)["logs"]
        found = {r["node"] for r in rows}
        time.sleep(0.5)
    assert found == set(COMPUTES)
    events = vhpc("-c", cluster, "events").stdout
    assert "cluster_up" in events


def test_job_output_reaches_the_log_store(cluster: str) -> None:
    job = vhpc("-c", cluster, "exec", "slurm", "--user", "cluser", "--", "sbatch",
               "--parsable", "-w", COMPUTES[-1], "--wrap",
               "echo vhpc-job-marker-$SLURM_JOB_ID").stdout.strip()
    deadline = time.monotonic() + 20
    rows: list[dict[str, str]] = []
    while time.monotonic() < deadline and not rows:
        rows = json.loads(vhpc("-c", cluster, "logs", "--service", "job", "--grep",
                               f"vhpc-job-marker-{job}", "--json").stdout)["logs"]
        time.sleep(0.5)
    assert [r["message"] for r in rows] == [f"vhpc-job-marker-{job}"]
    assert [r["node"] for r in rows] == [COMPUTES[-1]]  # the batch host, not the controller


def test_top_once(cluster: str) -> None:
    out = vhpc("-c", cluster, "top", "--once").stdout
    for name in COMPUTES:
        assert name in out


def test_prometheus_over_tcp(cluster: str) -> None:
    r = httpx.get(f"{_base()}/metrics", timeout=10, headers=_auth())
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    for name in COMPUTES:
        assert f'vhpc_node_memory_bytes{{cluster="{cluster}",node="{name}"}}' in r.text
    assert "/api/v1/metrics" in httpx.get(f"{_base()}/openapi.json", timeout=10,
                                          headers=_auth()).text


@pytest.mark.parametrize("path", [
    "/api/v1/metrics?since=-5", "/api/v1/metrics?metric=bogus", "/api/v1/metrics?since=abc",
    "/api/v1/metrics?node=" + "x" * 100, "/api/v1/logs?limit=abc", "/api/v1/logs?limit=0",
    "/api/v1/logs?limit=999999", "/api/v1/logs?level=zzz", "/api/v1/logs?since=-1",
    "/api/v1/events?since=-3", "/api/v1/events?limit=x",
])
def test_bad_input_is_4xx(cluster: str, path: str) -> None:
    r = httpx.get(f"{_base()}{path}", timeout=10, headers=_auth())
    assert 400 <= r.status_code < 500, (path, r.status_code, r.text)
    assert r.json()["error"]["type"] == "RequestError"


def test_every_tcp_route_needs_the_token(cluster: str) -> None:
    base = _base()
    for method, path in (("POST", "/api/v1/down"), ("DELETE", "/api/v1/nodes?name=compute0"),
                         ("POST", "/api/v1/nodes/compute0/stop"), ("GET", "/api/v1/status"),
                         ("GET", "/api/v1/logs"), ("GET", "/api/v1/events"),
                         ("GET", "/api/v1/metrics"), ("GET", "/api/v1/stream")):
        assert httpx.request(method, base + path, timeout=10).status_code == 401
        r = httpx.request(method, base + path, timeout=10,
                          headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 403
        assert r.json()["error"]["type"] == "TokenRejectedError"
    r = httpx.get(f"{base}/api/v1/status?token={_token()}", timeout=10)
    assert r.status_code == 200
    assert httpx.get(f"{base}/", timeout=10).status_code == 200  # the page holds no data
    assert vhpc("-c", cluster, "status", "--json").returncode == 0  # unix socket, no token


def test_tcp_refuses_a_foreign_host_header(cluster: str) -> None:
    """DNS rebinding: a page of evil.example resolved to 127.0.0.1 sends its own Host."""
    r = httpx.get(f"{_base()}/api/v1/status", timeout=10,
                  headers={**_auth(), "Host": "evil.example"})
    assert r.status_code == 421 and r.json()["error"]["type"] == "HostNotAllowedError"
    port = _base().rsplit(":", 1)[1]
    assert httpx.get(f"{_base()}/api/v1/health", timeout=10,
                     headers={**_auth(), "Host": f"localhost:{port}"}).status_code == 200


def test_a_body_over_the_limit_is_refused(cluster: str) -> None:
    r = httpx.post(f"{_base()}/api/v1/nodes", timeout=10, headers=_auth(),
                   content=b"[" + b" " * (2 << 20) + b"]")
    assert r.status_code == 413 and r.json()["error"]["type"] == "RequestTooLargeError"


def test_sse_stream(cluster: str) -> None:
    with httpx.stream("GET", f"{_base()}/api/v1/stream", timeout=10, headers=_auth()) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("data: {"):
                doc = json.loads(line[6:])
                node = next(n for n in doc["nodes"] if n["name"] == "compute0")
                assert "cpu_percent" in node and "rx_bps" in node
                break


@pytest.mark.skipif(not os.path.exists(CHROMIUM),
                    reason=f"{CHROMIUM} missing: apt-get install chromium")
def test_dashboard_real_manager(cluster: str) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{_base()}/?token={_token()}")  # the URL `vhpc up` prints
            for name in COMPUTES:
                page.wait_for_selector(f'[data-node="{name}"]', timeout=15_000)
            page.wait_for_selector('#live[data-mode="sse"]', timeout=15_000)
            assert page.locator("#cluster").inner_text() == cluster
            assert not errors, errors
        finally:
            browser.close()


def test_dashboard_on_a_non_loopback_address_needs_the_token_for_reads() -> None:
    """--listen on a non-loopback address (here the cluster's own bridge address)."""
    name = "t5pub"
    vhpc("-c", name, "clean", check=False)
    try:
        out = vhpc("-c", name, "up", "-n", "1", "--subnet", "10.209.7.0/24",
                   "--listen", "10.209.7.1:0").stdout
        token = (STATE_ROOT / name / "run" / "token").read_text().strip()
        assert f"token={token}" in out  # `vhpc up` prints the URL with its token
        port = (STATE_ROOT / name / "run" / "dashboard.port").read_text().strip()
        base = f"http://10.209.7.1:{port}"
        assert httpx.get(f"{base}/api/v1/status", timeout=10).status_code == 401
        assert httpx.get(f"{base}/api/v1/status?token=nope", timeout=10).status_code == 403
        ok = httpx.get(f"{base}/api/v1/status", timeout=10,
                       headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200 and ok.json()["cluster"] == name
        with pytest.raises(httpx.ConnectError):  # not on loopback: only where it was asked
            httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=5)
    finally:
        vhpc("-c", name, "down", check=False)
    assert leftovers(name) == []
