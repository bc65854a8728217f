"""FHIR Observation search, read and operations: ``GET /fhir/Observation`` (and ``_search``),
``GET /fhir/Observation/{id}``, ``$lastn`` and ``$stats``. Parameter parsing and the table of
supported parameters live in `api.routes.params`."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from api import queries
from api.auth.access import Decision, patient_access, patient_key_access, record_access
from api.auth.principals import Principal
from api.deps import CorrelationDep, PoolDep, ReaderDep
from api.routes import params as p
from api.storage import aggregate_grains, plan_segments
from ingestion.codes import SNOMED
from ingestion.exceptions import InvalidReadingError
from ingestion.known import RecentIds
from ingestion.news2_inputs import NEWS2_CODE
from ingestion.panels import COMPONENT_SYSTEM, component_unit, expand_panel, stored_component
from ingestion.responses import FhirResponse

__all__ = ["router"]

router = APIRouter(tags=["fhir"])

STATISTICS_SYSTEM = "http://terminology.hl7.org/CodeSystem/observation-statistics"
ACCEPTED_WAIT_S = 10.0  # how long a read waits for an id accepted here to be stored


@router.get("/fhir/Observation", openapi_extra=p.openapi_parameters(p.SEARCH))
async def search_get(
    request: Request, pool: PoolDep, principal: ReaderDep, correlation: CorrelationDep
) -> Response:
    """Search a patient's Observations (code, component-code, combo-code, category, date,
    _lastUpdated, _sort, _count, _elements, _summary, _total), one keyset page."""
    items = request.query_params.multi_items()
    return await search(request, pool, items, principal=principal, correlation=correlation)


@router.post(
    "/fhir/Observation/_search",
    openapi_extra={
        "requestBody": {
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {
                        "type": "object",
                        "properties": {q.name: {"type": "string"} for q in p.SEARCH},
                    }
                }
            }
        }
    },
)
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
    """One page of a patient's Observations, for a caller allowed to read them. Unsupported
    parameters are left out (and out of the self link), or refused under strict handling."""
    items = p.supported(items, p.SEARCH, strict=p.strict_handling(request.headers.get("prefer")))
    single = dict(items)
    patient = p.patient_param(single.get("patient.identifier"))
    async with pool.connection() as conn:
        keys, decision = await patient_access(conn=conn, principal=principal, patient=patient)
        wanted = queries.SearchFilter(
            codes=p.codes_param(single.get("code")),
            component_codes=p.codes_param(single.get("component-code"), name="component-code"),
            combo_codes=p.codes_param(single.get("combo-code"), name="combo-code"),
            category=p.category_param(single.get("category")),
            dates=[b for k, v in items if k == "date" for b in p.date_bounds(v)],
            updated=[b for k, v in items if k == "_lastUpdated" for b in p.date_bounds(v, k)],
        )
        only_count = p.summary_count(single)
        elements = p.elements_param(single.get("_elements")) or p.summary_elements(single)
        newest_first = p.sort_param(single.get("_sort"))
        count = 0 if only_count else p.count_param(single.get("_count"))
        after = p.decode_cursor(single["_cursor"]) if "_cursor" in single else None
        total = None
        if only_count or p.total_param(single.get("_total")):
            total = await queries.count_observations(conn=conn, keys=keys, wanted=wanted)
        rows = []
        if not only_count:
            rows = await queries.search_observations(
                conn=conn, keys=keys, wanted=wanted, newest_first=newest_first, after=after,
                count=count + 1,
            )  # fmt: skip
        shown = min(len(rows), count)
        await _audit(conn, principal, keys, decision, "search", shown, correlation)
    base = str(request.base_url).rstrip("/")
    kept = [(k, v) for k, v in items if k != "_cursor"]
    links = [{"relation": "self", "url": f"{base}{next_path}?{urlencode(items)}"}]
    if len(rows) > count:
        _, last_id, _, last_time = rows[count - 1]
        cursor = p.encode_cursor(last_time, last_id)
        url = f"{base}{next_path}?{urlencode([*kept, ('_cursor', cursor)])}"
        links.append({"relation": "next", "url": url})
    entries = [_entry(base, rid, resource, elements) for _, rid, resource, _ in rows[:count]]
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "link": links}
    if total is not None:
        bundle["total"] = total
    if not only_count:
        bundle["entry"] = entries
    return FhirResponse(bundle)


@router.get("/fhir/Observation/$lastn", openapi_extra=p.openapi_parameters(p.LASTN))
async def lastn(
    request: Request, pool: PoolDep, principal: ReaderDep, correlation: CorrelationDep
) -> Response:
    """FHIR ``$lastn``: the ``max`` newest Observations of each code (one code, or all).

    A component code (systolic 8480-6) gives also the ``max`` newest panels that carry it."""
    params = _supported(request, p.LASTN)
    patient = p.patient_param(params.get("patient.identifier"))
    async with pool.connection() as conn:
        keys, decision = await patient_access(conn=conn, principal=principal, patient=patient)
        codes = p.codes_param(params.get("code"))
        max_n = p.positive_int_param(params.get("max"), name="max", default=1, limit=1000)
        rows = await queries.last_n(conn=conn, keys=keys, codes=codes, max_n=max_n)
        if not codes or any(c == NEWS2_CODE and s in (None, SNOMED) for s, c in codes):
            scores = queries.SearchFilter(codes=[(SNOMED, NEWS2_CODE)])
            rows += await _newest(conn, keys, scores, max_n, seen={rid for _, rid, _ in rows})
        for code in (c for c in codes if stored_component(*c)):
            panels = queries.SearchFilter(component_codes=[code])
            rows += await _newest(conn, keys, panels, max_n, seen={rid for _, rid, _ in rows})
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


@router.get("/fhir/Observation/$stats", openapi_extra=p.openapi_parameters(p.STATS))
async def stats(
    request: Request, pool: PoolDep, principal: ReaderDep, correlation: CorrelationDep
) -> Response:
    """FHIR ``$stats``: a Parameters resource with one ``statistic`` Observation per code,
    one component per statistic (average, minimum, maximum, count, sum) over the period.

    As FHIR's definition of ``$stats`` says, a code counts the values of the Observations of
    that code and of the components with that code (systolic 8480-6 of the blood pressure
    panels), and a panel code (85354-9) answers one ``statistic`` per component."""
    params = _supported(request, p.STATS)
    patient = p.patient_param(params.get("patient.identifier"))
    results: list[dict[str, Any]] = []
    async with pool.connection() as conn:
        keys, decision = await patient_access(conn=conn, principal=principal, patient=patient)
        codes = p.codes_param(params.get("code"), required=True)
        start, end = p.period_param(params.get("period"))
        wanted = p.statistics_param(params.get("statistic"))
        for code in (part for asked in codes for part in expand_panel(*asked)):
            segments = plan_segments(start, end, aggregate_grains([code], ["daily", "hourly"]))
            units = await queries.latest_units(conn=conn, keys=keys, codes=[code])
            unit = component_unit(*code)
            if not units and unit:  # a component no Observation of its own has carried
                units = {(COMPONENT_SYSTEM, code[1]): unit}
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


async def _newest(
    conn: Any, keys: list[str], wanted: queries.SearchFilter, max_n: int, *, seen: set[str]
) -> list[tuple[str, str, str]]:
    """The ``max_n`` newest Observations a search finds, for what ``$lastn`` must include
    beyond the latest values of each code: NEWS2 scores (derived, they are not among the
    latest received values) and the panels that carry a component code."""
    found = await queries.search_observations(conn=conn, keys=keys, wanted=wanted, count=max_n)
    return [(key, rid, resource) for key, rid, resource, _ in found if rid not in seen]


def _supported(request: Request, params: tuple[p.Param, ...]) -> dict[str, str]:
    strict = p.strict_handling(request.headers.get("prefer"))
    return dict(p.supported(request.query_params.multi_items(), params, strict=strict))


def _entry(
    base: str, resource_id: str, resource: str, elements: frozenset[str] | None = None
) -> dict[str, Any]:
    body: Any = orjson.Fragment(resource) if elements is None else _subset(resource, elements)
    return {
        "fullUrl": f"{base}/fhir/Observation/{resource_id}",
        "resource": body,
        "search": {"mode": "match"},
    }


# Kept whatever _elements asks: FHIR servers SHOULD return the mandatory elements (Observation's
# status and code are 1..1), and clients that validate (fhirclient) refuse a resource without.
_MANDATORY = frozenset({"resourceType", "id", "meta", "status", "code"})
_SUBSETTED = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
              "code": "SUBSETTED"}  # fmt: skip


def _subset(resource: str, elements: frozenset[str]) -> dict[str, Any]:
    """The resource with only the asked-for and the mandatory elements (``value`` matches
    ``valueQuantity``…), tagged SUBSETTED as FHIR asks."""
    full = orjson.loads(resource)
    wanted = {e.removesuffix("[x]") for e in elements}
    kept = {
        k: v
        for k, v in full.items()
        if k in _MANDATORY
        or k in wanted
        or any(k.startswith(w) and k[len(w) : len(w) + 1].isupper() for w in wanted)
    }
    meta = kept.setdefault("meta", {})
    meta["tag"] = [*meta.get("tag", []), _SUBSETTED]
    return kept


@router.get("/fhir/Observation/{resource_id}")
async def read(
    resource_id: str,
    request: Request,
    pool: PoolDep,
    principal: ReaderDep,
    correlation: CorrelationDep,
) -> Response:
    """Read one Observation by id (with ``meta.versionId``, ``meta.lastUpdated`` and an
    ``ETag``), under the same rules as search. An id this API has just accepted is waited for
    briefly, so that a ``Location`` it answered resolves."""
    if not p.is_uuid(resource_id):
        raise InvalidReadingError(f"no Observation {resource_id!r}", code="not-found")
    found = await _stored(pool, resource_id, request.app.state.receiver.recent)
    if found is None:
        raise InvalidReadingError(f"no Observation {resource_id!r}", code="not-found")
    key, resource, version, stored = found
    async with pool.connection() as conn:
        decision = await patient_key_access(conn=conn, principal=principal, key=key)
        await _audit(conn, principal, [key], decision, "read", 1, correlation)
    body = orjson.loads(resource)
    meta = body.setdefault("meta", {})
    meta |= {"versionId": version, "lastUpdated": p.instant(stored)}
    return FhirResponse(body, headers={"ETag": f'W/"{version}"'})


async def _stored(
    pool: PoolDep, resource_id: str, recent: RecentIds
) -> tuple[str, str, str, dt.datetime] | None:
    """The stored Observation; for an id this process accepted moments ago, once it is stored
    (waiting up to `ACCEPTED_WAIT_S`)."""
    wait = ACCEPTED_WAIT_S if recent.known([resource_id]) else 0.0
    deadline = asyncio.get_running_loop().time() + wait
    while True:
        async with pool.connection() as conn:
            found = await queries.read_observation(conn=conn, resource_id=resource_id)
        if found is not None or asyncio.get_running_loop().time() >= deadline:
            return found
        await asyncio.sleep(0.1)
