"""The manager's HTTP app: JSON API under /api/v1 (OpenAPI at /openapi.json), dashboard at /.

Routes are thin: each calls one `ClusterAPI` method. Long calls run in a worker thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Query
from fastapi.responses import FileResponse, JSONResponse

from vhpc.api import ClusterAPI

STATIC = Path(__file__).parent / "static"


def create_app(api: ClusterAPI, on_down: Callable[[], None]) -> FastAPI:
    """Build the app for one cluster; `on_down` is called after a successful teardown."""
    app = FastAPI(title="vhpc", version="1", summary="A virtual HPC cluster's manager API")

    @app.get("/api/v1/status")
    async def status() -> dict[str, Any]:
        return await asyncio.to_thread(api.status)

    @app.get("/api/v1/events")
    async def events(since: float = Query(0.0, ge=0)) -> dict[str, Any]:
        return {"events": api.events(since)}

    @app.post("/api/v1/down")
    async def down() -> dict[str, Any]:
        leftovers = await asyncio.to_thread(api.down)
        on_down()
        return {"ok": not leftovers, "leftovers": leftovers}

    @app.get("/", include_in_schema=False)
    async def index() -> Any:
        page = STATIC / "index.html"
        if page.exists():
            return FileResponse(page)
        return JSONResponse({"cluster": api.cluster.spec.name, "api": "/api/v1/status"})

    return app
