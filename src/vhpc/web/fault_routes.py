"""Fault routes: POST /api/v1/faults (FaultRequest -> FaultList of the faults made),
GET /api/v1/faults (FaultList), DELETE /api/v1/faults[?id=|?kind=&node=] (ClearFaultsResult).
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import FastAPI, Query

from vhpc.api import ManagerAPI
from vhpc.models import MAX_NAMES, ClearFaultsResult, FaultKind, FaultList, FaultRequest


def add_fault_routes(app: FastAPI, api: ManagerAPI) -> None:
    """Mount the fault routes on the manager's app."""

    @app.post("/api/v1/faults", response_model=FaultList)
    async def add_fault(body: FaultRequest) -> FaultList:
        return FaultList(faults=await asyncio.to_thread(api.add_fault, body))

    @app.get("/api/v1/faults", response_model=FaultList)
    async def faults() -> FaultList:
        return FaultList(faults=await asyncio.to_thread(api.faults))

    @app.delete("/api/v1/faults", response_model=ClearFaultsResult)
    async def clear_faults(
        id: Annotated[str | None, Query(max_length=32, description="one fault (f3)")] = None,
        kind: Annotated[FaultKind | None, Query(description="only faults of this kind")] = None,
        node: Annotated[list[str] | None, Query(max_length=MAX_NAMES, description=(
            "only faults touching these nodes (repeat: ?node=a&node=b)"))] = None,
    ) -> ClearFaultsResult:
        cleared = await asyncio.to_thread(api.clear_faults, id, kind, node or [])
        return ClearFaultsResult(cleared=cleared)
