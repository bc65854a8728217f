"""FastAPI dependencies as ``Annotated`` aliases, in one place."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from psycopg_pool import AsyncConnectionPool

from api.auth.access import require_scope
from api.auth.principals import Principal, Scope
from api.settings import ApiSettings
from ingestion.receiver import correlation_of

__all__ = [
    "AdminDep",
    "AlertsDep",
    "CitizenDep",
    "CorrelationDep",
    "IngestDep",
    "PoolDep",
    "ReadDep",
    "ReaderDep",
    "SettingsDep",
    "SettingsWriterDep",
]


def get_pool(request: Request) -> AsyncConnectionPool:
    """The database pool opened at start-up."""
    pool: AsyncConnectionPool = request.app.state.pool
    return pool


def get_settings(request: Request) -> ApiSettings:
    """The settings the app was built with."""
    settings: ApiSettings = request.app.state.settings
    return settings


def get_correlation(request: Request) -> str:
    """The request's correlation id (the sender's, or a new one)."""
    if not hasattr(request.state, "correlation_id"):
        request.state.correlation_id = correlation_of(request)
    correlation: str = request.state.correlation_id
    return correlation


def requires(*scopes: Scope) -> Callable[[Request], Principal]:
    """A dependency: the request's principal, which must hold one of ``scopes``."""

    def principal(request: Request) -> Principal:
        caller: Principal = request.state.principal  # set by api.auth.middleware
        require_scope(caller, *scopes)
        return caller

    principal.required_scopes = scopes  # type: ignore[attr-defined]  # for the route audit test
    return principal


PoolDep = Annotated[AsyncConnectionPool, Depends(get_pool)]
SettingsDep = Annotated[ApiSettings, Depends(get_settings)]
CorrelationDep = Annotated[str, Depends(get_correlation)]
IngestDep = Annotated[Principal, Depends(requires(Scope.INGEST))]
ReadDep = Annotated[Principal, Depends(requires(Scope.READ))]
ReaderDep = Annotated[Principal, Depends(requires(Scope.READ, Scope.CITIZEN))]
AlertsDep = Annotated[Principal, Depends(requires(Scope.ALERTS))]
SettingsWriterDep = Annotated[Principal, Depends(requires(Scope.SETTINGS))]
AdminDep = Annotated[Principal, Depends(requires(Scope.ADMIN))]
CitizenDep = Annotated[Principal, Depends(requires(Scope.CITIZEN))]
