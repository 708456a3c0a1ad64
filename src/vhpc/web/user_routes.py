"""User routes: GET /api/v1/users (UserList), POST /api/v1/users (AddUserRequest -> UserInfo)."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI

from vhpc.api import ManagerAPI
from vhpc.models import AddUserRequest, UserInfo, UserList


def add_user_routes(app: FastAPI, api: ManagerAPI) -> None:
    """Mount the user routes on the manager's app."""

    @app.get("/api/v1/users", response_model=UserList)
    async def users() -> UserList:
        return await asyncio.to_thread(api.users)

    @app.post("/api/v1/users", response_model=UserInfo)
    async def add_user(body: AddUserRequest) -> UserInfo:
        return await asyncio.to_thread(api.add_user, body)
