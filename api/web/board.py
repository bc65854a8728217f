"""The nurse's board: every patient of her organisations, most urgent first, live over SSE,
with acknowledge and resolve. Reads through the same access and alert functions as the API."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Form, Header, Request
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.responses import RedirectResponse, Response

from api import alerting
from api.auth.access import organisations_in_view, record_access, require_person, require_scope
from api.auth.principals import Scope
from api.deps import get_correlation
from api.routes.alerts import actionable, audit_alerts
from api.routes.news2 import board_row, urgency
from api.web import data
from api.web.auth import CallerDep, WebCaller, check_csrf
from api.web.format import clock
from api.web.templating import render, render_text
from ingestion.exceptions import InvalidReadingError

__all__ = ["board_context", "router"]

router = APIRouter(prefix="/web", include_in_schema=False)
_SCORE_TICK_S = 3.0


async def board_context(request: Request, caller: WebCaller) -> dict[str, Any]:
    """What the board shows, read as ``GET /api/v1/board`` reads it (and logged likewise)."""
    require_scope(caller.principal, Scope.READ)
    now = dt.datetime.now(dt.UTC)
    async with request.app.state.pool.connection() as conn:
        organisations = await organisations_in_view(
            conn=conn, principal=caller.principal, requested=None
        )
        rows = await alerting.organisation_board(conn=conn, organisations=organisations)
        keys = [r["patient_key"] for r in rows]
        subscores = await data.latest_subscores(conn=conn, keys=keys)
        alerts = await data.active_alerts(conn=conn, organisations=organisations)
        last_event = await data.latest_alert_event(conn=conn)
        await record_access(
            conn=conn,
            principal=caller.principal,
            patient_keys=keys,
            action="read",
            resource="board",
            correlation_id=get_correlation(request),
            count=len(rows),
        )
    clinical = {a["patient_key"]: a for a in alerts if a["kind"] == "news2"}
    patients = []
    for row in rows:
        shown = board_row(row, now)
        shown["subscores"] = subscores.get(row["patient_key"]) or {}
        shown["clinical_alert"] = clinical.get(row["patient_key"])
        shown["score_text"] = _score_text(shown["news2"])
        patients.append(shown)
    patients.sort(
        key=lambda p: (
            p["clinical_alert"] is None or p["clinical_alert"]["status"] != "open",
            urgency(p),
        )
    )
    return {
        "patients": patients,
        "missing": [a for a in alerts if a["kind"] == "missing-measurement"],
        "organisations": organisations,
        "generated": now,
        "generated_clock": clock(now),
        "last_event": last_event,
        "caller": caller,
    }


@router.get("/tavle")
async def board_page(request: Request, caller: CallerDep) -> Response:
    """The board (the staff start page)."""
    return render("board.html", **await board_context(request, caller))


@router.get("/tavle/innhold")
async def board_rows(request: Request, caller: CallerDep) -> Response:
    """The board's content alone, for the live refresh."""
    context = await board_context(request, caller)
    return Response(
        render_text("board_content.html", **context),
        media_type="text/html",
        headers={"Cache-Control": "no-store"},
    )


@router.get("/tavle/hendelser")
async def board_events(
    request: Request,
    caller: CallerDep,
    etter: int = 0,
    last_event_id: Annotated[int | None, Header(alias="Last-Event-ID", ge=0)] = None,
) -> EventSourceResponse:
    """Server-Sent Events for the board: each alert event (with its id, so a reconnect resumes
    with Last-Event-ID) and a ``scores`` event whenever a score was computed."""
    require_scope(caller.principal, Scope.READ)
    feed = request.app.state.alert_feed
    pool = request.app.state.pool
    async with pool.connection() as conn:
        organisations = await organisations_in_view(
            conn=conn, principal=caller.principal, requested=None
        )
    resumed = last_event_id is not None
    after = last_event_id if last_event_id is not None else etter

    async def events() -> AsyncIterator[dict[str, Any]]:
        yield {
            "event": "hello",
            "data": orjson.dumps({"resumed": resumed, "after": after}).decode(),
        }
        alerts = feed.events(after=after, organisations=organisations).__aiter__()
        pending: asyncio.Future[dict[str, Any]] = asyncio.ensure_future(alerts.__anext__())
        async with pool.connection() as conn:
            seen = await data.latest_score_change(conn=conn, organisations=organisations)
        try:
            while True:
                done, _ = await asyncio.wait({pending}, timeout=_SCORE_TICK_S)
                if done:
                    row = pending.result()
                    async with pool.connection() as conn:
                        await audit_alerts(
                            conn, caller.principal, [row], "stream", get_correlation(request)
                        )
                    yield {
                        "id": str(row["event_id"]),
                        "event": "alert",
                        "data": orjson.dumps(
                            {"type": row["event"], "status": row["status"]}
                        ).decode(),
                    }
                    pending = asyncio.ensure_future(alerts.__anext__())
                    continue
                async with pool.connection() as conn:
                    latest = await data.latest_score_change(conn=conn, organisations=organisations)
                if latest != seen:
                    seen = latest
                    yield {"event": "scores", "data": "{}"}
        finally:
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await pending
            await alerts.aclose()

    return EventSourceResponse(
        events(),
        ping=15,
        ping_message_factory=lambda: ServerSentEvent(comment="keep-alive"),
        headers={"Cache-Control": "no-store"},
    )


@router.post("/varsler/{alert_id}/kvitter")
async def acknowledge(
    request: Request, alert_id: str, caller: CallerDep, csrf: Annotated[str, Form()] = ""
) -> Response:
    """Acknowledge an open alert from the board (who: the logged-in nurse)."""
    check_csrf(request, caller, csrf)
    principal = caller.principal
    require_scope(principal, Scope.ALERTS)
    require_person(principal)
    async with request.app.state.pool.connection() as conn:
        row = await actionable(conn, principal, alert_id)
        if not await alerting.acknowledge_alert(
            conn=conn, alert_id=alert_id, by=principal.actor, now=_now()
        ):
            raise InvalidReadingError("only an open alert can be acknowledged", code="conflict")
        await audit_alerts(conn, principal, [row], "acknowledge", get_correlation(request))
    return _done(request)


@router.post("/varsler/{alert_id}/lukk")
async def resolve(
    request: Request,
    alert_id: str,
    caller: CallerDep,
    csrf: Annotated[str, Form()] = "",
    note: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """Resolve an alert with a note from the board."""
    check_csrf(request, caller, csrf)
    principal = caller.principal
    require_scope(principal, Scope.ALERTS)
    require_person(principal)
    if not note.strip():
        raise InvalidReadingError("write a note to resolve an alert", expression="note")
    async with request.app.state.pool.connection() as conn:
        row = await actionable(conn, principal, alert_id)
        if not await alerting.resolve_alert(
            conn=conn, alert_id=alert_id, by=principal.actor, note=note.strip(), now=_now()
        ):
            raise InvalidReadingError("the alert is already resolved", code="conflict")
        await audit_alerts(conn, principal, [row], "resolve", get_correlation(request))
    return _done(request)


def _score_text(news: dict[str, Any] | None) -> str:
    """The total, or the partial sum in brackets for an incomplete set."""
    if not news:
        return "–"
    return (
        str(news["total"]) if news.get("total") is not None else f"({news.get('partial_sum', 0)})"
    )


def _done(request: Request) -> Response:
    """The script gets 204 and refreshes; a browser without script goes back to the board."""
    if request.headers.get("x-requested-with") == "fetch":
        return Response(status_code=204)
    return RedirectResponse("/web/tavle", status_code=303)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
