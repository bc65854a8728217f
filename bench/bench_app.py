"""The API app factory for ``uvicorn --factory`` in the ingestion benchmark (settings from env)."""

from __future__ import annotations

from fastapi import FastAPI

from api.main import create_app
from api.settings import ApiSettings
from infra.migrate import migration_ids


def create() -> FastAPI:
    """Build the API from ``MALESTROM_*`` environment variables."""
    return create_app(ApiSettings(), expected_migrations=migration_ids())
