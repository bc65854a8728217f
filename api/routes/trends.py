"""``GET /api/v1/trends``: compact per-bucket statistics of one code, for charts.

Whole buckets come from the hourly/daily aggregates, the ragged edges of ``[from, to)`` from raw
rows, so each row equals a computation over the raw readings of its bucket.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from api import queries
from api.auth.access import patient_access, record_access
from api.auth.principals import Principal
from api.deps import CorrelationDep, PoolDep, ReaderDep
from api.routes import params as p
from api.storage import aggregate_grains, plan_segments
from ingestion.exceptions import InvalidReadingError
from ingestion.panels import component_unit, components_of_panel, expand_panel

__all__ = ["router"]

router = APIRouter(tags=["trends"])

# bucket → (width, aggregate grains usable for it, coarsest first)
BUCKETS: dict[str, tuple[dt.timedelta, list[str]]] = {
    "15m": (dt.timedelta(minutes=15), []),
    "1h": (dt.timedelta(hours=1), ["hourly"]),
    "1d": (dt.timedelta(days=1), ["daily", "hourly"]),
}
MAX_BUCKETS = 10_000


@router.get("/api/v1/trends", openapi_extra=p.openapi_parameters(p.TRENDS))
async def trends(
    request: Request, pool: PoolDep, principal: ReaderDep, correlation: CorrelationDep
) -> Response:
    """One row per non-empty bucket: ``start, count, min, max, mean`` of the values."""
    strict = p.strict_handling(request.headers.get("prefer"))
    params = dict(p.supported(request.query_params.multi_items(), p.TRENDS, strict=strict))
    return await trend_rows(params, pool, principal=principal, correlation=correlation)


async def trend_rows(
    params: Mapping[str, str], pool: PoolDep, *, principal: Principal, correlation: str
) -> Response:
    """The trend of one patient's code, for a caller allowed to read it.

    A component code (8480-6, 8462-4) counts the panels' components with the Observations of
    that code; a panel code (85354-9) has no value of its own: its ``rows`` are empty and
    ``components`` holds one series per component.
    """
    patient = p.patient_param(params.get("patient.identifier"))
    async with pool.connection() as conn:
        keys, decision = await patient_access(conn=conn, principal=principal, patient=patient)
        codes = p.codes_param(params.get("code"), required=True)
        bucket = params.get("bucket", "1h")
        if bucket not in BUCKETS:
            raise InvalidReadingError("bucket must be 15m, 1h or 1d", expression="bucket")
        width, grains = BUCKETS[bucket]
        start, _ = p.instant_range(params.get("from") or "", "from")
        end, _ = p.instant_range(params.get("to") or "", "to")
        if not start < end <= start + width * MAX_BUCKETS:
            raise InvalidReadingError(
                f"from must precede to, by at most {MAX_BUCKETS} buckets", expression="to"
            )
        own = [c for c in codes if not components_of_panel(*c)]
        parts = [part for c in codes if components_of_panel(*c) for part in expand_panel(*c)]
        window = _Window(start, end, width, grains)
        unit, rows = await _series(conn, keys, own, window) if own else (None, [])
        components = [(code, *await _series(conn, keys, [code], window)) for code in parts]
        shown = len(rows) + sum(len(c[2]) for c in components)
        await record_access(
            conn=conn, principal=principal, patient_keys=keys, action="trends",
            resource="Observation", correlation_id=correlation, decision=decision,
            count=shown,
        )  # fmt: skip
    body: dict[str, Any] = {
        "code": params["code"],
        "unit": unit if own else next((u for _, u, _ in components if u), None),
        "bucket": bucket,
        "from": p.instant(start),
        "to": p.instant(end),
        "rows": rows,
    }
    if parts:
        body["components"] = [
            {"code": f"{system}|{code}", "unit": u, "rows": r}
            for (system, code), u, r in components
        ]
    return Response(orjson.dumps(body), media_type="application/json")


@dataclass(frozen=True, slots=True)
class _Window:
    start: dt.datetime
    end: dt.datetime
    width: dt.timedelta
    grains: list[str]


async def _series(
    conn: Any, keys: list[str], codes: list[queries.CodeRef], window: _Window
) -> tuple[str | None, list[dict[str, Any]]]:
    """The unit and the rows of one series: the values of ``codes``, bucket by bucket."""
    units = await queries.latest_units(conn=conn, keys=keys, codes=codes)
    segments = plan_segments(window.start, window.end, aggregate_grains(codes, window.grains))
    buckets = await queries.aggregate_buckets(
        conn=conn, keys=keys, codes=codes, segments=segments, width=window.width
    )
    unit = next(iter(units.values()), None) or component_unit(*codes[0])
    rows = [
        {"start": p.instant(b), "count": n, "min": lo, "max": hi, "mean": total / n}
        for b, n, total, lo, hi in buckets
        if b is not None
    ]
    return unit, rows
