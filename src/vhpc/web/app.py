"""The manager's HTTP app: JSON API under /api/v1 (OpenAPI at /openapi.json), dashboard at /.

Routes are thin: each calls one :class:`vhpc.api.ManagerAPI` method and returns a model of
:mod:`vhpc.models` (its ``response_model``, so the OpenAPI schema is the contract). Long
calls run in a worker thread. Failures follow the error contract (``web/errors.py``);
the token, Host and body-size checks are ``web/auth.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Query
from fastapi.responses import FileResponse, JSONResponse

from vhpc.api import ManagerAPI
from vhpc.models import (
    MAX_NAMES,
    AddNodesRequest,
    AddNodesResult,
    DownResult,
    ErrorBody,
    EventList,
    Health,
    JobList,
    NodeActionResult,
    NodeList,
    RemoveNodesResult,
    Status,
)
from vhpc.web.auth import MAX_BODY, Guard
from vhpc.web.errors import install_error_handlers
from vhpc.web.fault_routes import add_fault_routes
from vhpc.web.listen import TcpAccess
from vhpc.web.observe_routes import MAX_AGE, add_observe_routes
from vhpc.web.user_routes import add_user_routes

STATIC = Path(__file__).parent / "static"
NodeName = Annotated[str, Query(min_length=1, max_length=64)]
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (400, 401, 403, 404, 409, 413, 421, 500, 503)}


def create_app(api: ManagerAPI, access: TcpAccess, on_down: Callable[[], None],
               max_body: int = MAX_BODY) -> FastAPI:
    """Build the app for one cluster; `on_down` is called after a successful teardown."""
    app = FastAPI(title="vhpc", version="1", summary="A virtual HPC cluster's manager API",
                  responses=ERRORS)
    app.add_middleware(Guard, access=access, max_body=max_body)
    install_error_handlers(app)

    @app.get("/api/v1/health", response_model=Health)
    async def health() -> Health:
        return api.health()

    @app.get("/api/v1/status", response_model=Status)
    async def status(max_age: float = Query(
            0.0, ge=0, le=3600,
            description="accept Slurm's view this many seconds old (the dashboard: one "
                        "sampling interval, so it runs no Slurm command)")) -> Status:
        return await asyncio.to_thread(api.status, max_age)

    @app.get("/api/v1/events", response_model=EventList)
    async def events(since: float = Query(0.0, ge=0, description="Unix time, or an age in "
                                          "seconds if below 1e9"),
                     limit: int = Query(200, ge=1, le=5000)) -> EventList:
        return EventList(events=await asyncio.to_thread(api.events, since, limit))

    @app.post("/api/v1/down", response_model=DownResult)
    async def down(keep_logs: bool = Query(False, description="keep the cluster's logs "
                                           "in <state root>/.failed/ ('vhpc clean' "
                                           "removes them)")) -> DownResult:
        result = await asyncio.to_thread(api.down, keep_logs)
        on_down()
        return result

    @app.get("/api/v1/jobs", response_model=JobList)
    async def jobs(all: bool = Query(False, description="also finished jobs (slurmctld's "
                                     "recent ones; every one from sacct with accounting)"),
                   since: float = Query(0.0, ge=0, description="finished since this Unix "
                                        "time (accounting)"),
                   limit: int = Query(500, ge=1, le=10000)) -> JobList:
        return await asyncio.to_thread(api.jobs, all, since, limit)

    @app.get("/api/v1/nodes", response_model=NodeList)
    async def nodes() -> NodeList:
        return NodeList(nodes=await asyncio.to_thread(api.nodes))

    @app.post("/api/v1/nodes", response_model=AddNodesResult)
    async def add_nodes(body: AddNodesRequest) -> AddNodesResult:
        return AddNodesResult(added=await asyncio.to_thread(api.add_nodes, body))

    @app.delete("/api/v1/nodes", response_model=RemoveNodesResult)
    async def remove_nodes(
        name: Annotated[list[str], Query(min_length=1, max_length=MAX_NAMES,
                                         description="repeat: ?name=a&name=b")],
        drain: bool = Query(False, description="wait for the nodes' jobs to end first"),
    ) -> RemoveNodesResult:
        leftovers = await asyncio.to_thread(api.remove_nodes, list(name), drain)
        return RemoveNodesResult(removed=list(name), leftovers=leftovers)

    @app.post("/api/v1/nodes/{name}/stop", response_model=NodeActionResult)
    async def stop_node(name: str) -> NodeActionResult:
        await asyncio.to_thread(api.stop_node, name)
        return NodeActionResult(name=name, action="stop")

    @app.post("/api/v1/nodes/{name}/start", response_model=NodeActionResult)
    async def start_node(name: str, wait: bool = True) -> NodeActionResult:
        await asyncio.to_thread(api.start_node, name, wait)
        return NodeActionResult(name=name, action="start")

    add_observe_routes(app, api)
    add_user_routes(app, api)
    add_fault_routes(app, api)

    @app.get("/", include_in_schema=False)
    async def index() -> Any:
        page = STATIC / "index.html"
        if page.exists():
            return FileResponse(page)
        return JSONResponse({"cluster": api.name, "api": "/api/v1/status"})

    return app


__all__ = ["MAX_AGE", "create_app"]
