"""Alerts for nurses: list, acknowledge, resolve, a live stream, and the VKP-DHO document."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal

import orjson
from fastapi import APIRouter, Header, Query, Request
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.responses import Response

from api import alerting
from api.auth.access import (
    AccessDeniedError,
    allowed_organisations,
    authorise_organisation_data,
    organisations_in_view,
    patient_access,
    record_access,
    require_person,
)
from api.auth.principals import Principal
from api.deps import AlertsDep, CorrelationDep, PoolDep, ReadDep
from api.documents import alert_document
from api.models import AcknowledgeRequest, ResolveRequest
from api.routes import params as p
from ingestion.exceptions import InvalidReadingError
from ingestion.responses import FhirResponse

__all__ = ["actionable", "audit_alerts", "public_alert", "resume_point", "router"]

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])

Status = Literal["open", "acknowledged", "resolved"]
Level = Literal["urgent", "emergency"]


@router.get("")
async def list_alerts(
    pool: PoolDep,
    principal: ReadDep,
    correlation: CorrelationDep,
    organisation: str | None = None,
    status: Status | None = None,
    level: Level | None = None,
    patient: str | None = Query(None, alias="patient.identifier"),
    limit: int = Query(200, gt=0, le=1000),
) -> dict[str, Any]:
    """Alerts of the caller's organisations, newest first, filtered by organisation, status,
    level and patient (a clinician elsewhere with a care relationship: one patient's)."""
    async with pool.connection() as conn:
        key, organisations = None, None
        if patient:
            keys, decision = await patient_access(
                conn=conn, principal=principal, patient=p.patient_param(patient)
            )
            key = keys[0] if keys else str(uuid.UUID(int=0))
            if decision.basis != "care-relationship" or organisation:
                organisations = await organisations_in_view(
                    conn=conn, principal=principal, requested=organisation
                )
        else:
            organisations = await organisations_in_view(
                conn=conn, principal=principal, requested=organisation
            )
        rows = await alerting.list_alerts(
            conn=conn,
            organisations=organisations,
            status=status,
            level=level,
            patient_key=key,
            limit=limit,
        )
        await audit_alerts(conn, principal, rows, "list", correlation)
    return {"alerts": [public_alert(r) for r in rows]}


@router.get("/stream")
async def stream(
    request: Request,
    principal: ReadDep,
    correlation: CorrelationDep,
    organisation: str | None = None,
    last_event_id: int = Header(0, alias="Last-Event-ID", ge=0),
) -> EventSourceResponse:
    """Server-Sent Events of every alert change of the caller's organisations; reconnect with
    Last-Event-ID to resume."""
    feed = request.app.state.alert_feed
    pool = request.app.state.pool
    async with pool.connection() as conn:
        organisations = await organisations_in_view(
            conn=conn, principal=principal, requested=organisation
        )
        oldest, newest = await alerting.event_id_range(conn=conn)
    after, lost = resume_point(last_event_id, oldest=oldest, newest=newest)

    async def events() -> AsyncIterator[dict[str, Any]]:
        if lost:  # the client's point is no longer kept: it must reload, then follow
            reset = {"reason": "events before this point are no longer kept; reload the list",
                     "resume_from": after}  # fmt: skip
            yield {"id": str(after), "event": "reset", "data": orjson.dumps(reset).decode()}
        async for row in feed.events(after=after, organisations=organisations):
            async with pool.connection() as conn:
                await audit_alerts(conn, principal, [row], "stream", correlation)
            yield {"id": str(row["event_id"]), "event": "alert", "data": _event_json(row)}

    # Keep-alive as an SSE comment, which EventSource clients ignore, every 15 s.
    return EventSourceResponse(
        events(), ping=15, ping_message_factory=lambda: ServerSentEvent(comment="keep-alive")
    )


@router.get("/{alert_id}")
async def get_alert(
    alert_id: str, pool: PoolDep, principal: ReadDep, correlation: CorrelationDep
) -> dict[str, Any]:
    """One alert."""
    async with pool.connection() as conn:
        row = await _visible(conn, principal, alert_id)
        await audit_alerts(conn, principal, [row], "read", correlation)
    return public_alert(row)


@router.post("/{alert_id}/acknowledge")
async def acknowledge(
    alert_id: str,
    pool: PoolDep,
    principal: AlertsDep,
    correlation: CorrelationDep,
    body: AcknowledgeRequest | None = None,
) -> dict[str, Any]:
    """A nurse takes an open alert (recorded: who, from her login, and when)."""
    require_person(principal)
    async with pool.connection() as conn:
        await actionable(conn, principal, alert_id)
        if not await alerting.acknowledge_alert(
            conn=conn, alert_id=alert_id, by=principal.actor, now=_now()
        ):
            raise InvalidReadingError("only an open alert can be acknowledged", code="conflict")
        row = await _existing(conn, alert_id)
        await audit_alerts(conn, principal, [row], "acknowledge", correlation)
    return public_alert(row)


@router.post("/{alert_id}/resolve")
async def resolve(
    alert_id: str,
    body: ResolveRequest,
    pool: PoolDep,
    principal: AlertsDep,
    correlation: CorrelationDep,
) -> dict[str, Any]:
    """A nurse closes an alert with a note (who: from her login)."""
    require_person(principal)
    async with pool.connection() as conn:
        await actionable(conn, principal, alert_id)
        done = await alerting.resolve_alert(
            conn=conn, alert_id=alert_id, by=principal.actor, note=body.note, now=_now()
        )
        if not done:
            raise InvalidReadingError("the alert is already resolved", code="conflict")
        row = await _existing(conn, alert_id)
        await audit_alerts(conn, principal, [row], "resolve", correlation)
    return public_alert(row)


@router.get("/{alert_id}/$document")
async def document(
    alert_id: str, pool: PoolDep, principal: ReadDep, correlation: CorrelationDep
) -> Response:
    """A resolved alert as a VKP-DHO style document Bundle."""
    async with pool.connection() as conn:
        row = await _visible(conn, principal, alert_id)
        if row["status"] != "resolved":
            raise InvalidReadingError(
                "only a resolved alert can be exported; resolve it with a note first",
                code="business-rule",
            )
        observations: list[dict[str, Any]] = []
        if row["score_effective"] is not None:
            score, inputs = await alerting.score_inputs(
                conn=conn, patient_key=row["patient_key"], effective=row["score_effective"]
            )
            observations = ([score] if score else []) + inputs
        await audit_alerts(conn, principal, [row], "export", correlation)
    return FhirResponse(alert_document(row, observations, now=_now()))


def resume_point(last_event_id: int, *, oldest: int | None, newest: int | None) -> tuple[int, bool]:
    """Where a stream resumes for ``Last-Event-ID``: above the newest event, from the newest
    (not silently never); below the oldest kept, from the oldest, and True (say so)."""
    if newest is None:
        return 0, last_event_id > 0
    if last_event_id > newest:
        return newest, False
    if oldest is not None and 0 < last_event_id < oldest - 1:
        return oldest - 1, True
    return last_event_id, False


def public_alert(row: dict[str, Any]) -> dict[str, Any]:
    """An alert as the API shows it."""
    times = ("score_effective", "raised_at", "acknowledged_at", "resolved_at", "escalated_at")
    out = {k: row[k] for k in ("id", "organisation", "kind", "level", "status", "reason")}
    out |= {k: row[k].isoformat() if row[k] else None for k in times}
    out |= {k: row[k] for k in ("acknowledged_by", "resolved_by", "resolution_note")}
    out["patient"] = {"system": row["identifier_system"], "value": row["identifier_value"]}
    return out


def _event_json(row: dict[str, Any]) -> str:
    event = {
        "id": row["event_id"],
        "type": row["event"],
        "at": row["event_at"].isoformat(),
        "actor": row["event_actor"],
    }
    return orjson.dumps({"event": event, "alert": _as_at_event(row)}).decode()


def _as_at_event(row: dict[str, Any]) -> dict[str, Any]:
    """The alert as it stood when the event happened (a replayed ``raised`` is still open)."""
    alert = public_alert(row)
    alert["level"], alert["status"] = row["event_level"], row["event_status"]
    if row["event_status"] == "open":
        for name in ("acknowledged_at", "acknowledged_by"):
            alert[name] = None
    if row["event_status"] != "resolved":
        for name in ("resolved_at", "resolved_by", "resolution_note"):
            alert[name] = None
    at = row["event_at"]
    if row["escalated_at"] is not None and row["escalated_at"] > at:
        alert["escalated_at"] = None
    return alert


async def _existing(conn: Any, alert_id: str) -> dict[str, Any]:
    row = await alerting.get_alert(conn=conn, alert_id=alert_id) if p.is_uuid(alert_id) else None
    if row is None:
        raise InvalidReadingError("no such alert", expression="id", code="not-found")
    return row


async def _visible(conn: Any, principal: Principal, alert_id: str) -> dict[str, Any]:
    """The alert, when its organisation is the caller's or a care relationship allows it."""
    row = await _existing(conn, alert_id)
    await authorise_organisation_data(
        conn=conn,
        principal=principal,
        organisation=row["organisation"],
        patient_keys=[row["patient_key"]],
    )
    return row


async def actionable(conn: Any, principal: Principal, alert_id: str) -> dict[str, Any]:
    """The alert, when it belongs to one of the caller's organisations (acting needs more
    than a care relationship)."""
    row = await _existing(conn, alert_id)
    organisations = await allowed_organisations(conn=conn, principal=principal)
    if row["organisation"] not in organisations:
        raise AccessDeniedError(
            "only a nurse of the alert's organisation can act on it",
            principal=principal,
            patient_keys=[row["patient_key"]],
        )
    return row


async def audit_alerts(
    conn: Any, principal: Principal, rows: list[dict[str, Any]], action: str, correlation: str
) -> None:
    await record_access(
        conn=conn,
        principal=principal,
        patient_keys=[r["patient_key"] for r in rows],
        action=action,
        resource="alert",
        correlation_id=correlation,
        count=len(rows),
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
