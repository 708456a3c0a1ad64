"""The manager's HTTP app: JSON API under /api/v1 (OpenAPI at /openapi.json), dashboard at /.

Routes are thin: each calls one `ClusterAPI` method. Long calls run in a worker thread.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel

from vhpc.api import ClusterAPI
from vhpc.errors import ClusterStateError, UserError
from vhpc.spec.grow import NodeExistsError, NoSuchNodeError
from vhpc.web.observe_routes import add_observe_routes, event_rows, install_auth


class AddNodesBody(BaseModel):
    """POST /api/v1/nodes: names (or one name), or a count of auto-named nodes."""

    names: list[str] = []
    name: str | None = None
    count: int = 0
    memory: str | None = None
    cpus: int | None = None
    cpuset: str | None = None
    features: list[str] | str = []
    wait: bool = True


class RemoveNodesBody(BaseModel):
    """POST /api/v1/nodes/remove: several nodes at once."""

    names: list[str]
    drain: bool = False

STATIC = Path(__file__).parent / "static"


def create_app(api: ClusterAPI, on_down: Callable[[], None]) -> FastAPI:
    """Build the app for one cluster; `on_down` is called after a successful teardown."""
    app = FastAPI(title="vhpc", version="1", summary="A virtual HPC cluster's manager API")

    @app.get("/api/v1/health")
    async def health() -> dict[str, Any]:
        return {"cluster": api.cluster.spec.name, "phase": api.phase.value,
                "uptime": round(time.time() - api.started, 1)}

    @app.get("/api/v1/status")
    async def status(max_age: float = Query(
            0.0, ge=0, le=3600,
            description="accept Slurm's view this many seconds old (the dashboard: one "
                        "sampling interval, so it runs no Slurm command)")) -> dict[str, Any]:
        return await asyncio.to_thread(api.status, max_age)

    @app.get("/api/v1/events")
    async def events(since: float = Query(0.0, ge=0, description="Unix time, or an age in "
                                          "seconds if below 1e9"),
                     limit: int = Query(200, ge=1, le=5000)) -> dict[str, Any]:
        if api.observer is None:
            return {"events": [dict(e, id=0, service="vhpc") for e in api.events(since)]}
        return {"events": await asyncio.to_thread(event_rows, api.observer, since, limit)}

    install_auth(app, api)
    add_observe_routes(app, api)

    @app.post("/api/v1/down")
    async def down() -> dict[str, Any]:
        leftovers = await asyncio.to_thread(api.down)
        on_down()
        return {"ok": not leftovers, "leftovers": leftovers}

    @app.exception_handler(UserError)
    async def user_error(request: Request, err: UserError) -> JSONResponse:
        status = 404 if isinstance(err, NoSuchNodeError) else \
            409 if isinstance(err, NodeExistsError | ClusterStateError) else 400
        return JSONResponse({"detail": str(err)}, status_code=status)

    @app.get("/api/v1/nodes")
    async def nodes() -> dict[str, Any]:
        return {"nodes": await asyncio.to_thread(api.nodes)}

    @app.post("/api/v1/nodes")
    async def add_nodes(body: AddNodesBody) -> dict[str, Any]:
        names = list(body.names) + ([body.name] if body.name else [])
        features = body.features.split(",") if isinstance(body.features, str) else \
            body.features
        added = await asyncio.to_thread(api.add_nodes, names, body.count, body.memory,
                                        body.cpus, body.cpuset, features, body.wait)
        return {"added": added}

    @app.post("/api/v1/nodes/remove")
    async def remove_nodes(body: RemoveNodesBody) -> dict[str, Any]:
        leftovers = await asyncio.to_thread(api.remove_nodes, body.names, body.drain)
        return {"removed": body.names, "leftovers": leftovers}

    @app.delete("/api/v1/nodes/{name}")
    async def remove_node(name: str, drain: bool = False) -> dict[str, Any]:
        leftovers = await asyncio.to_thread(api.remove_nodes, [name], drain)
        return {"removed": [name], "leftovers": leftovers}

    @app.post("/api/v1/nodes/{name}/stop")
    async def stop_node(name: str) -> dict[str, Any]:
        await asyncio.to_thread(api.stop_node, name)
        return {"stopped": name}

    @app.post("/api/v1/nodes/{name}/start")
    async def start_node(name: str, wait: bool = True) -> dict[str, Any]:
        await asyncio.to_thread(api.start_node, name, wait)
        return {"started": name}

    @app.get("/", include_in_schema=False)
    async def index() -> Any:
        page = STATIC / "index.html"
        if page.exists():
            return FileResponse(page)
        return JSONResponse({"cluster": api.cluster.spec.name, "api": "/api/v1/status"})

    return app
