"""Observability routes (/metrics, /api/v1/metrics|logs|stream|events, /static) and the
token check of TCP requests.

Requests over the unix socket (mode 0600, root only) need no token. Over TCP a mutating
request (anything but GET/HEAD/OPTIONS) always needs it; reads need it too when the
dashboard listens on a non-loopback address. The token is accepted as
``Authorization: Bearer TOKEN``, ``?token=TOKEN`` or the ``vhpc_token`` cookie that
``GET /?token=TOKEN`` sets for the browser.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles

from vhpc.api import ClusterAPI
from vhpc.observe import CONTENT_TYPE, Observer
from vhpc.observe.metrics_store import METRICS

STATIC = Path(__file__).parent / "static"
COOKIE = "vhpc_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_AGE = 366 * 86400.0
EPOCH_CUTOFF = 1e9  # an events `since` above this is a Unix time, below an age
_KIND_RE = re.compile(r"^([a-z][a-z0-9_]*): (.*)$", re.DOTALL)

Since = Annotated[float, Query(ge=0, le=MAX_AGE, description="Age in seconds.")]


def _observer(api: ClusterAPI) -> Observer:
    obs: Observer | None = getattr(api, "observer", None)
    if obs is None:
        raise HTTPException(503, "observability is not running (cluster not ready)")
    return obs


def presented_token(request: Request) -> str:
    """The token a request carries (header, query or cookie), or ''."""
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.query_params.get("token") or request.cookies.get(COOKIE, "")


def is_unix(request: Request) -> bool:
    """True for a request over the manager's unix socket.

    uvicorn sets ``server`` to ``(socket_path, None)`` there (``None`` if unknown) and to
    ``(host, port)`` on TCP; ``client`` has no address on a unix socket.
    """
    server = request.scope.get("server")
    return server is None or server[1] is None


def install_auth(app: FastAPI, api: ClusterAPI) -> None:
    """Require the token on TCP as described in the module doc."""

    @app.middleware("http")
    async def check_token(request: Request,
                          call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if is_unix(request):
            return await call_next(request)
        token: str = getattr(api, "token", "")
        needs = request.method not in SAFE_METHODS or bool(getattr(api, "public", False))
        if needs:
            given = presented_token(request)
            if not token or not given:
                return JSONResponse({"detail": "token required (Authorization: Bearer TOKEN "
                                     "or ?token=TOKEN; see <state>/run/token)"},
                                    status_code=401,
                                    headers={"WWW-Authenticate": "Bearer"})
            if not hmac.compare_digest(given.encode(), token.encode()):
                return JSONResponse({"detail": "bad token"}, status_code=403)
        response = await call_next(request)
        if (request.url.path == "/" and request.query_params.get("token") and token
                and hmac.compare_digest(request.query_params["token"].encode(),
                                        token.encode())):
            response.set_cookie(COOKIE, token, httponly=True, samesite="strict")
        return response


def event_rows(obs: Observer, since: float, limit: int) -> list[dict[str, Any]]:
    """Observe event rows plus a "kind" (the vhpc event kind, or "observe")."""
    age = max(0.0, time.time() - since) if since > EPOCH_CUTOFF else since
    rows: list[dict[str, Any]] = obs.events_json(age or None, limit)["events"]
    for row in rows:
        match = _KIND_RE.match(str(row.get("message", "")))
        row["kind"] = match.group(1) if match else "observe"
    return rows


def add_observe_routes(app: FastAPI, api: ClusterAPI) -> None:
    """Mount /static and the observe routes on the manager's app."""
    if STATIC.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/metrics", include_in_schema=True, response_class=Response,
             summary="Prometheus exposition")
    async def prometheus() -> Response:
        body = await asyncio.to_thread(_observer(api).prometheus_text)
        return Response(body, media_type=CONTENT_TYPE)

    @app.get("/api/v1/metrics")
    async def metrics(
        metric: Annotated[str, Query(pattern=r"^[a-z_]{1,32}$")] = "memory",
        since: Since = 600.0,
        node: Annotated[str | None, Query(max_length=64)] = None,
    ) -> dict[str, Any]:
        if metric not in METRICS:
            raise HTTPException(422, f"unknown metric {metric!r}: one of {', '.join(METRICS)}")
        obs = _observer(api)
        result: dict[str, Any] = await asyncio.to_thread(obs.metrics_json, metric, since,
                                                         node or None)
        return result

    @app.get("/api/v1/logs")
    async def logs(
        q: Annotated[str | None, Query(max_length=256)] = None,
        node: Annotated[str | None, Query(max_length=64)] = None,
        service: Annotated[str | None, Query(max_length=64)] = None,
        level: Annotated[str | None, Query(
            pattern=r"^(debug|info|notice|warning|error|fatal)$")] = None,
        since: Annotated[float | None, Query(ge=0, le=MAX_AGE)] = None,
        limit: Annotated[int, Query(ge=1, le=5000)] = 200,
    ) -> dict[str, Any]:
        obs = _observer(api)
        result: dict[str, Any] = await asyncio.to_thread(obs.logs_json, q, node, service,
                                                         level, since, limit)
        return result

    @app.get("/api/v1/stream", response_class=StreamingResponse)
    async def stream(request: Request) -> StreamingResponse:
        obs = _observer(api)
        return StreamingResponse(_sse(request, api, obs), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})


def status_with_metrics(api: ClusterAPI, obs: Observer) -> dict[str, Any]:
    """The status document with the sampler's latest numbers merged into each node."""
    doc = api.status(max_age=2 * obs.interval)  # the sampler keeps Slurm's view this fresh
    metrics = obs.node_metrics()
    for node in doc.get("nodes", []):
        for key, value in metrics.get(node.get("name", ""), {}).items():
            if value is not None:
                node[key] = value
    return doc


async def _sse(request: Request, api: ClusterAPI, obs: Observer) -> AsyncIterator[str]:
    last = obs.log_store.last_id()
    next_status = 0.0
    yield "retry: 3000\n\n"
    while not await request.is_disconnected():
        if getattr(api, "observer", None) is not obs:
            return  # the observer stopped (down)
        now = time.monotonic()
        if now >= next_status:
            doc = await asyncio.to_thread(status_with_metrics, api, obs)
            yield f"event: status\ndata: {json.dumps(doc)}\n\n"
            next_status = now + obs.interval
        wait = max(0.05, min(1.0, next_status - time.monotonic()))
        rows = await asyncio.to_thread(obs.wait_logs, last, wait)
        if rows:
            last = max(r.id for r in rows)
            yield f"event: log\ndata: {json.dumps([r.to_dict() for r in rows])}\n\n"
