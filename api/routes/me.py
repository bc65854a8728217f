"""The citizen's own data (``/api/v1/me/…``): measurements, trends, who has seen them, and all
of it as one FHIR Bundle (the right of access). A citizen token only; the patient is always
the token's own ``pid``, so no parameter can name anybody else."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Query, Request
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from starlette.responses import Response, StreamingResponse

from api.auth.access import Decision, own_identifier, own_patient_key, record_access
from api.deps import CitizenDep, CorrelationDep, PoolDep
from api.routes.observations import search
from api.routes.trends import trend_rows
from ingestion.responses import FHIR_JSON

__all__ = ["access_entry", "access_log_rows", "export_bundle", "router"]

router = APIRouter(prefix="/api/v1/me", tags=["citizen"])

_ACTIONS = {
    "search": "så målingene dine",
    "lastn": "så de siste målingene dine",
    "stats": "så statistikk over målingene dine",
    "trends": "så utviklingen i målingene dine",
    "read": "så opplysninger om deg",
    "list": "så varsler om deg",
    "stream": "fulgte varsler om deg",
    "export": "lastet ned opplysninger om deg",
    "acknowledge": "tok hånd om et varsel om deg",
    "resolve": "avsluttet et varsel om deg",
    "update": "endret innstillingene for målingene dine",
    "access-log": "så hvem som har sett opplysningene dine",
    "refused": "ble nektet å se opplysninger om deg",
}
_REASONS = {
    "own-data": "Du så dine egne opplysninger",
    "organisation": "Helsehjelp fra virksomheten som følger deg opp",
    "care-relationship": "Helsehjelp (behandlingsrelasjon)",
}


@router.get("/observations")
async def my_observations(
    request: Request, pool: PoolDep, principal: CitizenDep, correlation: CorrelationDep
) -> Response:
    """The citizen's own measurements, as a searchset Bundle (``code``, ``date``, ``_count``,
    ``_sort`` and paging as in FHIR search)."""
    items = [(k, v) for k, v in request.query_params.multi_items() if k != "patient.identifier"]
    items.append(("patient.identifier", own_identifier(principal)))
    return await search(
        request,
        pool,
        items,
        principal=principal,
        correlation=correlation,
        next_path="/api/v1/me/observations",
    )


@router.get("/trends")
async def my_trends(
    request: Request, pool: PoolDep, principal: CitizenDep, correlation: CorrelationDep
) -> Response:
    """The trend of one of the citizen's own codes (``code``, ``from``, ``to``, ``bucket``)."""
    params = dict(request.query_params) | {"patient.identifier": own_identifier(principal)}
    return await trend_rows(params, pool, principal=principal, correlation=correlation)


@router.get("/access-log")
async def my_access_log(
    pool: PoolDep,
    principal: CitizenDep,
    correlation: CorrelationDep,
    limit: int = Query(200, gt=0, le=1000),
) -> dict[str, Any]:
    """Who has seen the citizen's data: when, who, which organisation, and why (as on
    Helsenorge's tilgangslogg; no internal free text)."""
    key = own_patient_key(principal)
    async with pool.connection() as conn:
        rows = await access_log_rows(conn=conn, key=key, limit=limit)
        await record_access(
            conn=conn, principal=principal, patient_keys=[key], action="access-log",
            resource="AuditEvent", correlation_id=correlation, decision=Decision("own-data"),
            count=len(rows),
        )  # fmt: skip
    return {"entries": [access_entry(r) for r in rows]}


@router.get("/export", response_class=Response)
async def my_export(pool: PoolDep, principal: CitizenDep, correlation: CorrelationDep) -> Response:
    """All the citizen's data as one FHIR Bundle (type collection), streamed."""
    key = own_patient_key(principal)
    async with pool.connection() as conn:
        await record_access(
            conn=conn, principal=principal, patient_keys=[key], action="export",
            resource="Observation", correlation_id=correlation, decision=Decision("own-data"),
        )  # fmt: skip
    return StreamingResponse(
        export_bundle(pool, key),
        media_type=FHIR_JSON,
        headers={"Content-Disposition": 'attachment; filename="mine-malinger.json"'},
    )


async def export_bundle(pool: PoolDep, key: str) -> AsyncIterator[bytes]:
    now = dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")
    yield b'{"resourceType":"Bundle","type":"collection","timestamp":"' + now.encode()
    yield b'","entry":['
    first = True
    async with pool.connection() as conn, conn.cursor(name="export") as cur:
        await cur.execute(
            "SELECT resource::text FROM observations WHERE patient_key = %s ORDER BY effective, id",
            (key,),
        )
        async for (resource,) in cur:
            yield (b"" if first else b",") + b'{"resource":' + resource.encode() + b"}"
            first = False
    yield b"]}"


async def access_log_rows(
    *, conn: AsyncConnection[Any], key: str, limit: int
) -> list[dict[str, Any]]:
    """The access records about one patient, newest first."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        """
        SELECT a.occurred, a.actor_kind, a.actor_hpr, a.actor_name, a.client_id, a.role,
           a.organisation, o.name AS organisation_name, a.action, a.resource,
           a.purpose, a.decision_ref, a.outcome, a.detail->>'basis' AS basis
        FROM audit_events a LEFT JOIN organisations o ON o.org_id = a.organisation
        WHERE a.patient_key = %s
        ORDER BY a.occurred DESC, a.id DESC LIMIT %s
        """,
        (key, limit),
    )
    return await cur.fetchall()


def access_entry(row: dict[str, Any]) -> dict[str, Any]:
    if row["actor_kind"] == "citizen":
        # A citizen is refused only someone else's data: a refusal in your log was another
        # person's attempt, never yours, and their identity is not shown.
        who = "En annen innbygger" if row["outcome"] == "denied" else "Deg selv"
    elif row["actor_kind"] == "system":
        who = f"Fagsystem ({row['client_id'] or 'ukjent'})"
    else:
        name = row["actor_name"] or "Helsepersonell"
        who = f"{name}, HPR-nummer {row['actor_hpr']}" if row["actor_hpr"] else name
    organisation = None
    if row["organisation"]:
        organisation = {"number": row["organisation"], "name": row["organisation_name"]}
    return {
        "when": row["occurred"].isoformat(),
        "who": who,
        "role": row["role"],
        "organisation": organisation,
        "what": _ACTIONS.get(row["action"], row["action"]),
        "why": (
            "Avvist: ingen tilgang til opplysningene dine"
            if row["outcome"] == "denied"
            else _REASONS.get(row["basis"] or "", "Helsehjelp")
        ),
        "outcome": row["outcome"],
        "purpose_of_use": row["purpose"],
        "decision_ref": row["decision_ref"],
    }
