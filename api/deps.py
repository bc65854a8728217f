"""FastAPI dependencies as ``Annotated`` aliases, in one place."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from psycopg_pool import AsyncConnectionPool

from api.settings import ApiSettings

__all__ = ["PoolDep", "SettingsDep"]


def get_pool(request: Request) -> AsyncConnectionPool:
    """The database pool opened at start-up."""
    pool: AsyncConnectionPool = request.app.state.pool
    return pool


def get_settings(request: Request) -> ApiSettings:
    """The settings the app was built with."""
    settings: ApiSettings = request.app.state.settings
    return settings


PoolDep = Annotated[AsyncConnectionPool, Depends(get_pool)]
SettingsDep = Annotated[ApiSettings, Depends(get_settings)]
