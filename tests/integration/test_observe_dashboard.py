"""The dashboard in a real browser, against a dev server with fake data.

The dev server is a small FastAPI app that implements the manager's dashboard contract
(see the top of src/vhpc/web/static/app.js) with a real Observer sampling a fake cgroup
v1 tree that a background thread keeps changing. Run it by hand to work on the page:

    .venv/bin/python tests/integration/test_observe_dashboard.py --serve 8765
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles

import vhpc.web
from tests.integration.helpers import CHROMIUM, launch_chromium
from vhpc.observe import NodeHandle, NodeSample, Observer, SlurmGauges
from vhpc.observe.fakefs import fake_cluster, write_v1, write_veth

STATIC = Path(vhpc.web.__file__).parent / "static"
REPO = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO / "docs" / "dashboard.png"


class FakeCluster:
    """Fake nodes (fake cgroup files that change), fake jobs, a real Observer."""

    def __init__(self, root: Path, n: int = 4, interval: float = 0.5) -> None:
        self.root = root
        self.nodes: list[NodeHandle] = fake_cluster(root, n)
        self.lock = threading.Lock()
        self.status_gets = 0
        self.stopping = threading.Event()
        self.interval = interval
        self.cpu = {h.name: 0 for h in self.nodes}
        self.net = {h.name: 0 for h in self.nodes}
        self.ooms = {h.name: 0 for h in self.nodes}
        self.jobs = [
            {"id": "12", "name": "gemm", "user": "cluser", "state": "RUNNING",
             "nodes": "compute[1-2]", "time": "0:42"},
            {"id": "13", "name": "hello", "user": "cluser", "state": "PENDING",
             "nodes": "(Resources)", "time": "0:00"},
        ]
        self.observer = Observer(
            root / "state", "demo", self.handles, slurm_provider=self.slurm,
            interval=interval, log_interval=0.2, net_root=root / "net",
        )
        self._churn = threading.Thread(target=self._run, daemon=True)

    def handles(self) -> list[NodeHandle]:
        with self.lock:
            return list(self.nodes)

    def slurm(self) -> SlurmGauges:
        n = len(self.handles())
        return SlurmGauges({"idle": n - 2, "alloc": 2}, {"running": 1, "pending": 1}, 11)

    def add_node(self, name: str) -> None:
        i = len(self.nodes) + 1
        dirs = write_v1(self.root / "cgroup", name, mem=12 << 20)
        write_veth(self.root / "net", f"vh{i}")
        log = self.root / "log" / f"slurmd.{name}.log"
        log.write_text(f"[{time.strftime('%Y-%m-%dT%H:%M:%S')}.000] slurmd started\n")
        with self.lock:
            self.cpu[name] = self.net[name] = self.ooms[name] = 0
            self.nodes.append(NodeHandle(name, dirs, f"vh{i}", {"slurmd": log}))
        self.observer.record_event(f"node {name} added", node=name)

    def status(self) -> dict[str, Any]:
        metrics = self.observer.node_metrics()
        nodes = [self._node(i, h, metrics.get(h.name, {})) for i, h in enumerate(self.handles())]
        return {"cluster": "demo", "phase": "ready", "nodes": nodes, "jobs": self.jobs}

    def _node(self, i: int, h: NodeHandle, m: dict[str, Any]) -> dict[str, Any]:
        state = "alloc" if h.name in ("compute1", "compute2") else "idle"
        return {
            "name": h.name, "role": "compute", "ip": f"10.77.0.{10 + i}", "cpuset": str(i % 2),
            "memory_limit": m.get("memory_limit") or 125 << 20,
            "memory_usage": m.get("memory_usage", 0), "oom_kills": m.get("oom_kills", 0),
            "cpu_percent": m.get("cpu_percent"), "slurm_state": state,
            "services": [
                {"name": "munged", "state": "running", "pid": 1000 + i, "restarts": 0},
                {"name": "slurmd", "state": "running", "pid": 2000 + i, "restarts": i % 2},
            ],
        }

    def _run(self) -> None:
        rnd = random.Random(5)
        tick = 0
        while not self.stopping.wait(0.25):
            tick += 1
            for idx, h in enumerate(self.handles(), start=1):
                busy = h.name in ("compute1", "compute2")
                self.cpu[h.name] += int((0.9 if busy else 0.05) * 0.25e9 * rnd.uniform(0.7, 1))
                self.net[h.name] += rnd.randint(1_000, 200_000 if busy else 5_000)
                if h.name == "compute3" and tick == 20:
                    self.ooms[h.name] += 1
                mem = (80 if busy else 20) + rnd.randint(0, 30)
                write_v1(self.root / "cgroup", h.name, mem=mem << 20, cpu_ns=self.cpu[h.name],
                         oom_kills=self.ooms[h.name], pids=(idx, idx + 1))
                write_veth(self.root / "net", f"vh{idx}", rx_bytes=self.net[h.name],
                           tx_bytes=self.net[h.name] // 3)
                if rnd.random() < 0.15:
                    level = rnd.choice(["", "", "error: ", "debug: ", "warning: "])
                    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
                    with h.log_files["slurmd"].open("a") as f:
                        f.write(f"[{stamp}.000] {level}slurmd tick {tick} on {h.name}\n")

    def backfill(self, seconds: int = 600) -> None:
        """Write ``seconds`` of plausible history so the charts have lines at once."""
        now = time.time()
        cpu = dict.fromkeys(self.cpu, 0)
        n = seconds // 5
        for k in range(n, 0, -1):
            ts = now - k * 5
            batch = []
            for i, h in enumerate(self.handles()):
                busy = h.name in ("compute1", "compute2") and k < 70
                cpu[h.name] += int((0.85 if busy else 0.04) * 5e9)
                wave = 10 * math.sin(k / 9 + i)
                mem = int((85 if busy else 22) + wave) << 20
                batch.append(NodeSample(h.name, ts, mem, 125 << 20, None, 0, 0, cpu[h.name],
                                        2, (n - k) * 30_000, (n - k) * 9_000, n - k, n - k))
            self.observer.metrics_store.write(batch)
        self.observer.metrics_store.flush()

    def start(self) -> None:
        self.backfill()
        self.observer.start()
        self._churn.start()

    def stop(self) -> None:
        self.stopping.set()
        self._churn.join(5)
        self.observer.stop()


def create_dev_app(fake: FakeCluster) -> FastAPI:
    """The manager's dashboard routes, served from fake data."""
    app = FastAPI()
    obs = fake.observer
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/")
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/api/v1/status")
    def status() -> dict[str, Any]:
        fake.status_gets += 1
        return fake.status()

    @app.get("/api/v1/metrics")
    def metrics(metric: str = "memory", since: float = 600, node: str | None = None) -> Any:
        return obs.metrics_json(metric, since, node)

    @app.get("/api/v1/logs")
    def logs(q: str = "", node: str = "", service: str = "", level: str = "",
             since: float | None = None, limit: int = 200) -> Any:
        return obs.logs_json(q, node, service, level, since, limit)

    @app.get("/api/v1/events")
    def events(since: float | None = None) -> Any:
        return obs.events_json(since)

    @app.get("/api/v1/stream")
    async def stream(request: Request) -> StreamingResponse:
        async def gen() -> AsyncIterator[str]:
            last = obs.log_store.last_id()
            while not fake.stopping.is_set() and not await request.is_disconnected():
                yield f"event: status\ndata: {json.dumps(fake.status())}\n\n"
                rows = await asyncio.to_thread(obs.log_store.follow, last)
                if rows:
                    last = rows[-1].id
                    yield f"event: log\ndata: {json.dumps([r.to_dict() for r in rows])}\n\n"
                await asyncio.sleep(fake.interval)

        return StreamingResponse(gen(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})

    return app


class ServerThread:
    """uvicorn on 127.0.0.1 (a socket we bound ourselves) in a daemon thread."""

    def __init__(self, app: FastAPI, port: int = 0) -> None:
        self.sock = socket.create_server(("127.0.0.1", port))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=1,
                                lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeCluster]:
    f = FakeCluster(tmp_path)
    f.start()
    yield f
    f.stop()


@pytest.mark.skipif(not os.path.exists(CHROMIUM),
                    reason=f"{CHROMIUM} missing: apt-get install chromium")
def test_dashboard_live_updates(fake: FakeCluster) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    deadline = time.monotonic() + 10  # a few samples so the charts have lines
    while time.monotonic() < deadline and len(fake.observer.metrics_store.nodes()) < 4:
        time.sleep(0.1)
    time.sleep(1.5)
    with ServerThread(create_dev_app(fake)) as url, sync_api.sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url)
            page.wait_for_selector('[data-node="compute4"]', timeout=10_000)
            assert page.locator("#nodes .node").count() == 4
            page.wait_for_selector('#live[data-mode="sse"]', timeout=10_000)
            assert page.locator("#cluster").inner_text() == "demo"
            assert page.locator("#jobs tbody tr").count() == 2

            gets = fake.status_gets
            fake.add_node("compute5")
            page.wait_for_selector('[data-node="compute5"]', timeout=10_000)
            assert fake.status_gets == gets, "the new node came by SSE, not by polling"
            page.wait_for_selector('#events li:has-text("node compute5 added")', timeout=10_000)

            page.wait_for_selector("#chart-nodes polyline", timeout=15_000)
            assert page.locator("#chart-total polyline").count() == 1

            page.fill("#q", "slurmd started")
            page.click("#log-form button[type=submit]")
            page.wait_for_selector('#logs tr:has-text("slurmd started")', timeout=10_000)
            page.select_option("#f-level", "")
            page.fill("#q", "")
            page.click("#log-form button[type=submit]")
            page.wait_for_function(
                "document.querySelectorAll('#nodes .node').length === 5", timeout=5000)
            time.sleep(1.0)
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)
            assert not errors, errors
        finally:
            browser.close()


def _serve(port: int) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        fake = FakeCluster(Path(tmp), n=8, interval=1.0)
        fake.start()
        try:
            with ServerThread(create_dev_app(fake), port) as url:
                print(f"dashboard dev server on {url} (Ctrl-C to stop)")
                while True:
                    time.sleep(3600)
        except KeyboardInterrupt:
            pass
        finally:
            fake.stop()


if __name__ == "__main__" and "--serve" in sys.argv:
    args = sys.argv[sys.argv.index("--serve") + 1:]
    _serve(int(args[0]) if args else 8765)
