"""Observability routes: /metrics (Prometheus), /api/v1/metrics|logs|stream, /static.

``/api/v1/stream`` is server-sent events: ``event: status`` (a :class:`vhpc.models.Status`
with the sampler's numbers merged) every sampling interval, ``event: log`` (a list of
:class:`vhpc.models.LogLine`) as lines arrive.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated

from fastapi import FastAPI, Query, Request, Response
from fastapi.responses import StreamingResponse
from fastapi.staticfiles import StaticFiles

from vhpc.api import ManagerAPI
from vhpc.errors import RequestError
from vhpc.models import LogList, MetricsResult
from vhpc.observe.exporters import CONTENT_TYPE
from vhpc.observe.metrics_store import METRICS
from vhpc.observe.views import SLURM_METRICS

STATIC = Path(__file__).parent / "static"
MAX_AGE = 366 * 86400.0

Since = Annotated[float, Query(ge=0, le=MAX_AGE, description="Age in seconds.")]


def add_observe_routes(app: FastAPI, api: ManagerAPI) -> None:
    """Mount /static and the observe routes on the manager's app."""
    if STATIC.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/metrics", include_in_schema=True, response_class=Response,
             summary="Prometheus exposition")
    async def prometheus() -> Response:
        body = await asyncio.to_thread(api.prometheus)
        return Response(body, media_type=CONTENT_TYPE)

    @app.get("/api/v1/metrics", response_model=MetricsResult)
    async def metrics(
        metric: Annotated[str, Query(pattern=r"^[a-z_]{1,32}$")] = "memory",
        since: Since = 600.0,
        node: Annotated[str | None, Query(max_length=64)] = None,
    ) -> MetricsResult:
        if metric not in METRICS and metric not in SLURM_METRICS:
            raise RequestError(f"unknown metric {metric!r}",
                               fix=f"use one of {', '.join([*METRICS, *SLURM_METRICS])}")
        return MetricsResult(series=await asyncio.to_thread(api.metrics, metric, since,
                                                            node or None))

    @app.get("/api/v1/logs", response_model=LogList)
    async def logs(
        q: Annotated[str | None, Query(max_length=256)] = None,
        node: Annotated[str | None, Query(max_length=64)] = None,
        service: Annotated[str | None, Query(max_length=64)] = None,
        level: Annotated[str | None, Query(
            pattern=r"^(debug|info|notice|warning|error|fatal)$")] = None,
        since: Annotated[float | None, Query(ge=0, le=MAX_AGE)] = None,
        limit: Annotated[int, Query(ge=1, le=5000)] = 200,
    ) -> LogList:
        return LogList(logs=await asyncio.to_thread(api.logs, q, node, service, level,
                                                    since, limit))

    @app.get("/api/v1/stream", response_class=StreamingResponse)
    async def stream(request: Request) -> StreamingResponse:
        api.stream_interval  # noqa: B018 -- raises ServiceUnavailableError once stopped
        return StreamingResponse(_sse(request, api), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})


async def _sse(request: Request, api: ManagerAPI) -> AsyncIterator[str]:
    last = api.log_cursor()
    next_status = 0.0
    yield "retry: 3000\n\n"
    while last is not None and not await request.is_disconnected():
        if api.log_cursor() is None:
            return  # observability stopped (down)
        interval = api.stream_interval
        now = time.monotonic()
        if now >= next_status:
            doc = await asyncio.to_thread(api.status, 2 * interval, True)
            yield f"event: status\ndata: {doc.model_dump_json()}\n\n"
            next_status = now + interval
        wait = max(0.05, min(1.0, next_status - time.monotonic()))
        rows = await asyncio.to_thread(api.wait_logs, last, wait)
        if rows:
            last = max(r.id for r in rows)
            yield f"event: log\ndata: {json.dumps([r.model_dump() for r in rows])}\n\n"
