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

from api import alerting, queries
from api.deps import PoolDep
from api.documents import alert_document
from api.models import AcknowledgeRequest, ResolveRequest
from ingestion.exceptions import InvalidReadingError
from ingestion.identifiers import patient_key
from ingestion.responses import FhirResponse

__all__ = ["public_alert", "router"]

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])

Status = Literal["open", "acknowledged", "resolved"]
Level = Literal["urgent", "emergency"]


@router.get("")
async def list_alerts(
    pool: PoolDep,
    organisation: str | None = None,
    status: Status | None = None,
    level: Level | None = None,
    patient: str | None = Query(None, alias="patient.identifier"),
    limit: int = Query(200, gt=0, le=1000),
    agent: str = Query("anonymous", description="who reads, for the access log"),
) -> dict[str, Any]:
    """Alerts, newest first, filtered by organisation, status, level and patient."""
    key = _patient_key(patient) if patient else None
    async with pool.connection() as conn:
        rows = await alerting.list_alerts(
            conn=conn,
            organisation=organisation,
            status=status,
            level=level,
            patient_key=key,
            limit=limit,
        )
        await _audit(conn, rows, agent, "list")
    return {"alerts": [public_alert(r) for r in rows]}


@router.get("/stream")
async def stream(
    request: Request,
    organisation: str | None = None,
    last_event_id: int = Header(0, alias="Last-Event-ID", ge=0),
    agent: str = Query("anonymous", description="who reads, for the access log"),
) -> EventSourceResponse:
    """Server-Sent Events of every alert change; reconnect with Last-Event-ID to resume."""
    feed = request.app.state.alert_feed
    pool = request.app.state.pool

    async def events() -> AsyncIterator[dict[str, Any]]:
        async for row in feed.events(after=last_event_id, organisation=organisation):
            async with pool.connection() as conn:
                await _audit(conn, [row], agent, "stream")
            yield {"id": str(row["event_id"]), "event": "alert", "data": _event_json(row)}

    # Keep-alive as an SSE comment, which EventSource clients ignore, every 15 s.
    return EventSourceResponse(
        events(), ping=15, ping_message_factory=lambda: ServerSentEvent(comment="keep-alive")
    )


@router.get("/{alert_id}")
async def get_alert(alert_id: str, pool: PoolDep, agent: str = "anonymous") -> dict[str, Any]:
    """One alert."""
    async with pool.connection() as conn:
        row = await _existing(conn, alert_id)
        await _audit(conn, [row], agent, "read")
    return public_alert(row)


@router.post("/{alert_id}/acknowledge")
async def acknowledge(alert_id: str, body: AcknowledgeRequest, pool: PoolDep) -> dict[str, Any]:
    """A nurse takes an open alert (recorded: who and when)."""
    async with pool.connection() as conn:
        await _existing(conn, alert_id)
        if not await alerting.acknowledge_alert(
            conn=conn, alert_id=alert_id, by=body.by, now=_now()
        ):
            raise InvalidReadingError("only an open alert can be acknowledged", code="conflict")
        row = await _existing(conn, alert_id)
    return public_alert(row)


@router.post("/{alert_id}/resolve")
async def resolve(alert_id: str, body: ResolveRequest, pool: PoolDep) -> dict[str, Any]:
    """A nurse closes an alert with a note."""
    async with pool.connection() as conn:
        await _existing(conn, alert_id)
        done = await alerting.resolve_alert(
            conn=conn, alert_id=alert_id, by=body.by, note=body.note, now=_now()
        )
        if not done:
            raise InvalidReadingError("the alert is already resolved", code="conflict")
        row = await _existing(conn, alert_id)
    return public_alert(row)


@router.get("/{alert_id}/$document")
async def document(alert_id: str, pool: PoolDep, agent: str = "anonymous") -> Response:
    """A resolved alert as a VKP-DHO style document Bundle."""
    async with pool.connection() as conn:
        row = await _existing(conn, alert_id)
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
        await _audit(conn, [row], agent, "export")
    return FhirResponse(alert_document(row, observations, now=_now()))


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
    return orjson.dumps({"event": event, "alert": public_alert(row)}).decode()


async def _existing(conn: Any, alert_id: str) -> dict[str, Any]:
    row = await alerting.get_alert(conn=conn, alert_id=alert_id) if _is_uuid(alert_id) else None
    if row is None:
        raise InvalidReadingError("no such alert", expression="id", code="not-found")
    return row


async def _audit(conn: Any, rows: list[dict[str, Any]], agent: str, action: str) -> None:
    await queries.record_audit(
        conn=conn,
        patient_keys={r["patient_key"] for r in rows},
        agent=agent,
        action=action,
        resource="alert",
        outcome="success",
    )


def _patient_key(identifier: str) -> str:
    system, _, value = identifier.rpartition("|")
    return str(patient_key(system or "urn:oid:2.16.578.1.12.4.1.4.1", value))


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
