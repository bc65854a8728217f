"""FHIR Observation search: ``GET /fhir/Observation`` and ``POST /fhir/Observation/_search``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from api import queries
from api.deps import PoolDep
from ingestion.exceptions import InvalidReadingError
from ingestion.responses import FhirResponse

__all__ = ["router"]

router = APIRouter(tags=["fhir"])

DEFAULT_COUNT = 50
MAX_COUNT = 1000


@router.get("/fhir/Observation")
async def search_get(request: Request, pool: PoolDep) -> Response:
    """Search a patient's Observations, newest first."""
    return await _search(request, pool, request.query_params)


@router.post("/fhir/Observation/_search")
async def search_post(request: Request, pool: PoolDep) -> Response:
    """The same search with the parameters in a form body (as PMD clients send it)."""
    form = await request.form()
    params = {**request.query_params, **{k: str(v) for k, v in form.items()}}
    return await _search(request, pool, params)


async def _search(request: Request, pool: PoolDep, params: Mapping[str, str]) -> Response:
    patient = _patient_param(params.get("patient.identifier"))
    count = _count_param(params.get("_count"))
    async with pool.connection() as conn:
        rows = await queries.search_observations(conn=conn, patient=patient, count=count)
        await queries.record_audit(
            conn=conn,
            patient_keys={key for key, _, _ in rows},
            agent="anonymous",
            action="search",
            resource="Observation",
            outcome="success",
            detail={"count": len(rows)},
        )
    base = str(request.base_url).rstrip("/")
    entries = [_entry(base, rid, resource) for _, rid, resource in rows]
    bundle = {
        "resourceType": "Bundle",
        "type": "searchset",
        "link": [{"relation": "self", "url": str(request.url)}],
        "entry": entries,
    }
    return FhirResponse(bundle)


def _entry(base: str, resource_id: str, resource: str) -> dict[str, Any]:
    return {
        "fullUrl": f"{base}/fhir/Observation/{resource_id}",
        "resource": orjson.Fragment(resource),
        "search": {"mode": "match"},
    }


def _patient_param(value: str | None) -> queries.PatientRef:
    if not value:
        raise InvalidReadingError(
            "patient.identifier is required (system|value, or the value alone)",
            expression="patient.identifier",
            code="required",
        )
    system, sep, ident = value.partition("|")
    if not sep:
        return None, value
    if not ident:
        raise InvalidReadingError(
            "patient.identifier needs a value after '|'",
            expression="patient.identifier",
            code="value",
        )
    return system or None, ident


def _count_param(value: str | None) -> int:
    if value is None:
        return DEFAULT_COUNT
    if not value.isdigit() or not 0 < int(value) <= MAX_COUNT:
        raise InvalidReadingError(
            f"_count must be an integer from 1 to {MAX_COUNT}", expression="_count", code="value"
        )
    return int(value)
