"""FHIR Observation search and operations: ``GET /fhir/Observation`` (and ``_search``),
``$lastn`` and ``$stats``. Parameter parsing lives in `api.routes.params`."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from api import queries
from api.auth.access import Decision, patient_access, record_access
from api.auth.principals import Principal
from api.deps import CorrelationDep, PoolDep, ReaderDep
from api.routes import params as p
from api.storage import aggregate_grains, plan_segments
from ingestion.responses import FhirResponse

__all__ = ["router"]

router = APIRouter(tags=["fhir"])

STATISTICS_SYSTEM = "http://terminology.hl7.org/CodeSystem/observation-statistics"


@router.get("/fhir/Observation")
async def search_get(
    request: Request, pool: PoolDep, principal: ReaderDep, correlation: CorrelationDep
) -> Response:
    """Search a patient's Observations (code, date, _sort, _count), one keyset page."""
    items = request.query_params.multi_items()
    return await search(request, pool, items, principal=principal, correlation=correlation)


@router.post("/fhir/Observation/_search")
async def search_post(
    request: Request, pool: PoolDep, principal: ReaderDep, correlation: CorrelationDep
) -> Response:
    """The same search with the parameters in a form body (as PMD clients send it)."""
    form = await request.form()
    items = [*request.query_params.multi_items(), *((k, str(v)) for k, v in form.multi_items())]
    return await search(request, pool, items, principal=principal, correlation=correlation)


async def search(
    request: Request,
    pool: PoolDep,
    items: list[tuple[str, str]],
    *,
    principal: Principal,
    correlation: str,
    next_path: str = "/fhir/Observation",
) -> Response:
    """One page of a patient's Observations, for a caller allowed to read them."""
    single = dict(items)
    patient = p.patient_param(single.get("patient.identifier"))
    async with pool.connection() as conn:
        keys, decision = await patient_access(conn=conn, principal=principal, patient=patient)
        codes = p.codes_param(single.get("code"))
        dates = [b for k, v in items if k == "date" for b in p.date_bounds(v)]
        newest_first = p.sort_param(single.get("_sort"))
        count = p.count_param(single.get("_count"))
        after = p.decode_cursor(single["_cursor"]) if "_cursor" in single else None
        rows = await queries.search_observations(
            conn=conn, keys=keys, codes=codes, dates=dates, newest_first=newest_first,
            after=after, count=count + 1,
        )  # fmt: skip
        await _audit(conn, principal, keys, decision, "search", min(len(rows), count), correlation)
    base = str(request.base_url).rstrip("/")
    links = [{"relation": "self", "url": str(request.url)}]
    if len(rows) > count:
        _, last_id, _, last_time = rows[count - 1]
        kept = [(k, v) for k, v in items if k != "_cursor"]
        cursor = p.encode_cursor(last_time, last_id)
        links.append(
            {
                "relation": "next",
                "url": f"{base}{next_path}?{urlencode([*kept, ('_cursor', cursor)])}",
            }
        )
    entries = [_entry(base, rid, resource) for _, rid, resource, _ in rows[:count]]
    return FhirResponse({"resourceType": "Bundle", "type": "searchset", "link": links,
                         "entry": entries})  # fmt: skip


@router.get("/fhir/Observation/$lastn")
async def lastn(
    request: Request, pool: PoolDep, principal: ReaderDep, correlation: CorrelationDep
) -> Response:
    """FHIR ``$lastn``: the ``max`` newest Observations of each code (one code, or all)."""
    params = request.query_params
    patient = p.patient_param(params.get("patient.identifier"))
    async with pool.connection() as conn:
        keys, decision = await patient_access(conn=conn, principal=principal, patient=patient)
        codes = p.codes_param(params.get("code"))
        max_n = p.positive_int_param(params.get("max"), name="max", default=1, limit=1000)
        rows = await queries.last_n(conn=conn, keys=keys, codes=codes, max_n=max_n)
        await _audit(conn, principal, keys, decision, "lastn", len(rows), correlation)
    base = str(request.base_url).rstrip("/")
    return FhirResponse(
        {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": len(rows),
            "link": [{"relation": "self", "url": str(request.url)}],
            "entry": [_entry(base, rid, resource) for _, rid, resource in rows],
        }
    )


@router.get("/fhir/Observation/$stats")
async def stats(
    request: Request, pool: PoolDep, principal: ReaderDep, correlation: CorrelationDep
) -> Response:
    """FHIR ``$stats``: a Parameters resource with one ``statistic`` Observation per code,
    one component per statistic (average, minimum, maximum, count, sum) over the period."""
    params = request.query_params
    patient = p.patient_param(params.get("patient.identifier"))
    results: list[dict[str, Any]] = []
    async with pool.connection() as conn:
        keys, decision = await patient_access(conn=conn, principal=principal, patient=patient)
        codes = p.codes_param(params.get("code"), required=True)
        start, end = p.period_param(params.get("period"))
        wanted = p.statistics_param(params.get("statistic"))
        for code in codes:
            segments = plan_segments(start, end, aggregate_grains([code], ["daily", "hourly"]))
            units = await queries.latest_units(conn=conn, keys=keys, codes=[code])
            buckets = await queries.aggregate_buckets(
                conn=conn, keys=keys, codes=[code], segments=segments, width=None
            )
            results.append(_statistic(patient, code, units, buckets, wanted, start, end))
        await _audit(conn, principal, keys, decision, "stats", len(results), correlation)
    return FhirResponse(
        {
            "resourceType": "Parameters",
            "parameter": [{"name": "statistic", "resource": r} for r in results],
        }
    )


def _statistic(
    patient: queries.PatientRef,
    code: queries.CodeRef,
    units: dict[tuple[str, str], str | None],
    buckets: list[queries.Bucket],
    wanted: list[str],
    start: dt.datetime,
    end: dt.datetime,
) -> dict[str, Any]:
    system = code[0] or next((s for s, _ in units), None)
    unit = next(iter(units.values()), None)
    n, total, low, high = buckets[0][1:] if buckets else (0, 0.0, None, None)
    values: dict[str, float | int | None] = {
        "average": total / n if n else None,
        "minimum": low,
        "maximum": high,
        "count": n,
        "sum": total if n else None,
    }
    components = []
    for name in wanted:
        value = values[name]
        if value is None:
            continue
        quantity: dict[str, Any] = {"value": value}
        if name != "count" and unit:
            quantity |= {"unit": unit, "system": "http://unitsofmeasure.org", "code": unit}
        components.append(
            {
                "code": {"coding": [{"system": STATISTICS_SYSTEM, "code": name}]},
                "valueQuantity": quantity,
            }
        )
    coding = {"system": system, "code": code[1]} if system else {"code": code[1]}
    subject = {"value": patient[1]} | ({"system": patient[0]} if patient[0] else {})
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [coding]},
        "subject": {"identifier": subject},
        "effectivePeriod": {"start": p.instant(start), "end": p.instant(end)},
        "component": components,
    }


async def _audit(
    conn: Any,
    principal: Principal,
    keys: list[str],
    decision: Decision,
    action: str,
    count: int,
    correlation: str,
) -> None:
    await record_access(
        conn=conn,
        principal=principal,
        patient_keys=keys,
        action=action,
        resource="Observation",
        correlation_id=correlation,
        decision=decision,
        count=count,
    )


def _entry(base: str, resource_id: str, resource: str) -> dict[str, Any]:
    return {
        "fullUrl": f"{base}/fhir/Observation/{resource_id}",
        "resource": orjson.Fragment(resource),
        "search": {"mode": "match"},
    }
