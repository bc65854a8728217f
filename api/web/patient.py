"""The staff patient page and the citizen's own page ("Mine målinger")."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response, StreamingResponse

from api import alerting
from api.auth.access import (
    Decision,
    own_identifier,
    own_patient_key,
    patient_access,
    record_access,
    require_scope,
)
from api.auth.principals import Kind, Scope
from api.deps import get_correlation
from api.routes.me import access_entry, access_log_rows, export_bundle
from api.web import data
from api.web.auth import CallerDep
from api.web.charts import BandRange, Point, Series, line_chart
from api.web.format import PARAMETERS
from api.web.templating import render
from api.web.vitals import PERIODS, VITALS, ticks, vital_charts
from ingestion.exceptions import InvalidReadingError
from ingestion.responses import FHIR_JSON

__all__ = ["router"]

router = APIRouter(prefix="/web", include_in_schema=False)
_NEWS2_BANDS = [BandRange(-1, 4.5, 0), BandRange(4.5, 6.5, 2), BandRange(6.5, 21, 3)]
_NAMES = {v.code: v for v in VITALS}


def _period(value: str) -> str:
    if value not in PERIODS:
        raise InvalidReadingError("periode must be 24t, 7d or 30d", expression="periode")
    return value


@router.get("/pasient/{identifier}")
async def patient_page(
    request: Request, identifier: str, caller: CallerDep, periode: str = "24t"
) -> Response:
    """A patient's charts, NEWS2 over time, alerts and settings (a clinician elsewhere with a
    care relationship too; the access log records on which basis)."""
    period = _period(periode)
    principal = caller.principal
    if principal.kind is not Kind.CITIZEN:
        require_scope(principal, Scope.READ)
    now = dt.datetime.now(dt.UTC)
    async with request.app.state.pool.connection() as conn:
        keys, decision = await patient_access(
            conn=conn, principal=principal, patient=(None, identifier)
        )
        if principal.kind is Kind.CITIZEN:
            return RedirectResponse("/web/mine-malinger", status_code=303)
        settings = (
            await alerting.get_patient_settings(conn=conn, patient_key=keys[0]) if keys else None
        )
        charts = await vital_charts(
            conn=conn,
            keys=keys,
            period=period,
            now=now,
            spo2_scale=(settings or {}).get("spo2_scale", 1),
        )
        since = now - PERIODS[period][0]
        scores = await data.score_history(conn=conn, keys=keys, since=since)
        recent = scores[-10:][::-1]
        ids = [
            i["id"]
            for s in recent
            for i in (s["inputs"] or {}).values()
            if isinstance(i, dict) and "id" in i
        ]
        inputs = await data.input_values(conn=conn, keys=keys, ids=ids)
        alerts = await data.alert_history(conn=conn, keys=keys)
        history = await data.settings_history(conn=conn, keys=keys)
        await record_access(
            conn=conn,
            principal=principal,
            patient_keys=keys,
            action="read",
            resource="patient-page",
            correlation_id=get_correlation(request),
            decision=decision,
            count=sum(len(s.points) for c in charts for s in c["series"]) + len(scores),
        )
    return render(
        "patient.html",
        caller=caller,
        identifier=identifier,
        period=period,
        periods=PERIODS,
        charts=charts,
        news2_chart=_news2_chart(scores, now - PERIODS[period][0], now, period),
        scores=recent,
        inputs=inputs,
        input_text=_input_text,
        alerts=alerts,
        settings=settings,
        history=history,
        decision=decision,
        parameters=PARAMETERS,
    )


def _news2_chart(
    scores: list[dict[str, Any]], start: dt.datetime, end: dt.datetime, period: str
) -> str:
    points = [Point(s["effective"], float(s["total"])) for s in scores if s["total"] is not None]
    return line_chart(
        title="NEWS2 totalskår",
        series=[Series("NEWS2", "line-a", points)],
        start=start,
        end=end,
        y_range=(0, 10),
        bands=_NEWS2_BANDS,
        ticks=ticks(start, end, period),
        chart_id="chart-news2",
    )


def _input_text(reading: tuple[str, float | None, list[Any] | None] | None) -> str:
    """A score's input reading in words: ``"Puls 88 slag/min"``."""
    if reading is None:
        return "ukjent måling"
    code, value, components = reading
    vital = _NAMES.get(code)
    name, unit = (vital.title, vital.unit) if vital else (code, "")
    if components:
        parts = [str((c.get("valueQuantity") or {}).get("value", "–")) for c in components[:2]]
        return f"{name} {'/'.join(parts)} {unit}".strip()
    shown = "–" if value is None else f"{value:g}".replace(".", ",")
    return f"{name} {shown} {unit}".strip()


@router.get("/mine-malinger")
async def citizen_page(request: Request, caller: CallerDep, periode: str = "30d") -> Response:
    """The citizen's own measurements, who has seen them, and the download of everything."""
    period = _period(periode)
    principal = caller.principal
    require_scope(principal, Scope.CITIZEN)
    now = dt.datetime.now(dt.UTC)
    key = own_patient_key(principal)
    async with request.app.state.pool.connection() as conn:
        charts = await vital_charts(
            conn=conn, keys=[key], period=period, now=now, with_bands=False, only_with_data=True
        )
        readings = await data.recent_readings(conn=conn, keys=[key])
        log = [access_entry(r) for r in await access_log_rows(conn=conn, key=key, limit=100)]
        await record_access(
            conn=conn,
            principal=principal,
            patient_keys=[key],
            action="read",
            resource="citizen-page",
            correlation_id=get_correlation(request),
            decision=Decision("own-data"),
            count=len(readings),
        )
    latest: dict[str, dict[str, Any]] = {}
    for reading in readings:
        latest.setdefault(reading["code"], reading)
    return render(
        "citizen.html",
        caller=caller,
        charts=charts,
        period=period,
        periods=PERIODS,
        readings=readings,
        latest=latest,
        names=_NAMES,
        log=log,
        own=own_identifier(principal),
        reading_text=lambda r: _input_text((r["code"], r["value"], r["components"])),
    )


@router.get("/mine-malinger/last-ned")
async def citizen_download(request: Request, caller: CallerDep) -> Response:
    """All of one's data as one FHIR Bundle (as ``GET /api/v1/me/export``)."""
    principal = caller.principal
    require_scope(principal, Scope.CITIZEN)
    key = own_patient_key(principal)
    async with request.app.state.pool.connection() as conn:
        await record_access(
            conn=conn,
            principal=principal,
            patient_keys=[key],
            action="export",
            resource="Observation",
            correlation_id=get_correlation(request),
            decision=Decision("own-data"),
        )
    return StreamingResponse(
        export_bundle(request.app.state.pool, key),
        media_type=FHIR_JSON,
        headers={
            "Content-Disposition": 'attachment; filename="mine-malinger.json"',
            "Cache-Control": "no-store",
        },
    )
