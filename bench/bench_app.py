"""The API app factory for ``uvicorn --factory`` in the benchmarks (settings from env).

``MALESTROM_BENCH_AUTH=off`` replaces the token and proof checks by a fixed principal (a hub
and nurse of one organisation), so that `auth_bench` can measure what the checks cost. It
exists only here, never in the product.
"""

from __future__ import annotations

import os

from fastapi import FastAPI

import api.main
from api.auth.authenticator import RequestFacts
from api.auth.principals import Kind, Principal, Scope
from api.main import create_app
from api.settings import ApiSettings
from infra.devissuer import SIMULATED_ORGANISATION
from infra.migrate import migration_ids

FIXED = Principal(
    Kind.PERSON,
    frozenset({Scope.INGEST, Scope.READ}),
    client_id="bench",
    pid="10705207645",
    hpr="9144900",
    organisation=SIMULATED_ORGANISATION,
)


class _NoChecks:
    async def authenticate(self, _request: RequestFacts) -> Principal:
        return FIXED


def create() -> FastAPI:
    """Build the API from ``MALESTROM_*`` environment variables."""
    if os.environ.get("MALESTROM_BENCH_AUTH") == "off":
        api.main.build_authenticator = lambda _settings, _replay: _NoChecks()  # type: ignore[assignment,return-value]
    return create_app(ApiSettings(), expected_migrations=migration_ids())
