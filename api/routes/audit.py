"""The access log for operators, as FHIR ``AuditEvent`` resources (``GET /fhir/AuditEvent``),
shaped after HL7 Norway's ``no-domain-Trustframework-Auditevent``: the patient, the agent (who,
their role and organisation), the purpose of use and decision reference, the action, when."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from psycopg import sql
from psycopg.rows import dict_row
from starlette.responses import Response

from api import queries
from api.auth.access import Decision, record_access
from api.deps import AdminDep, CorrelationDep, PoolDep
from api.routes import params as p
from ingestion.identifiers import person_system
from ingestion.performers import HPR_SYSTEM, ORGNR_SYSTEM
from ingestion.responses import FhirResponse

__all__ = ["router"]

router = APIRouter(tags=["fhir"])

_DCM = "http://dicom.nema.org/resources/ontology/DCM"
_ACTION = {"update": "U", "acknowledge": "U", "resolve": "U", "export": "R"}
_PURPOSE_SYSTEM = "urn:oid:2.16.840.1.113883.1.11.20448"


@router.get("/fhir/AuditEvent")
async def search_audit_events(
    pool: PoolDep,
    principal: AdminDep,
    correlation: CorrelationDep,
    patient: str = Query(alias="patient.identifier"),
    date: Annotated[list[str], Query(description="recorded, with prefixes")] = [],  # noqa: B006 - FastAPI copies it
    count: int = Query(100, alias="_count", ge=1, le=1000),
) -> Response:
    """Access records about one patient, newest first."""
    ref = p.patient_param(patient)
    bounds = [b for value in date for b in p.date_bounds(value)]
    async with pool.connection() as conn:
        keys = await queries.patient_keys(conn=conn, patient=ref)
        rows = await _records(conn, keys, bounds, count)
        await record_access(
            conn=conn, principal=principal, patient_keys=keys, action="search",
            resource="AuditEvent", correlation_id=correlation,
            decision=Decision("operations"), count=len(rows),
        )  # fmt: skip
    return FhirResponse(
        {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": len(rows),
            "entry": [{"resource": _audit_event(r), "search": {"mode": "match"}} for r in rows],
        }
    )


async def _records(
    conn: Any, keys: list[str], bounds: list[queries.DateBound], count: int
) -> list[dict[str, Any]]:
    conditions: list[sql.Composable] = [sql.SQL("a.patient_key = ANY(%s::uuid[])")]
    args: list[Any] = [keys]
    for op, when in bounds:
        conditions.append(sql.SQL("a.occurred {} %s").format(sql.SQL(op)))
        args.append(when)
    query = sql.SQL(
        "SELECT a.*, p.identifier_system, p.identifier_value FROM audit_events a "
        "JOIN patients p ON p.patient_key = a.patient_key "
        "WHERE {} ORDER BY a.occurred DESC, a.id DESC LIMIT %s"
    ).format(sql.SQL(" AND ").join(conditions))
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(query, [*args, count])
    rows: list[dict[str, Any]] = await cur.fetchall()
    return rows


def _audit_event(row: dict[str, Any]) -> dict[str, Any]:
    who: list[dict[str, Any]] = []
    if row["actor_hpr"]:
        who.append({"system": HPR_SYSTEM, "value": row["actor_hpr"]})
    if row["actor_pid"]:
        who.append({"system": person_system(row["actor_pid"]), "value": row["actor_pid"]})
    agent: dict[str, Any] = {
        "type": {"coding": [{"system": "http://dicom.nema.org/resources/ontology/DCM",
                             "code": "110153", "display": "Source Role ID"}]},
        "role": [{"text": row["role"] or "unknown"}],
        "requestor": True,
        "altId": row["client_id"],
        "name": row["actor_name"] or row["agent"],
    }  # fmt: skip
    if who:
        agent["who"] = {"identifier": who[0], "display": row["agent"]}
    if row["organisation"]:
        agent["location"] = {"identifier": {"system": ORGNR_SYSTEM, "value": row["organisation"]}}
    if row["purpose"]:
        agent["purposeOfUse"] = [{"coding": [{"system": _PURPOSE_SYSTEM, "code": row["purpose"]}]}]
    entity: list[dict[str, Any]] = [
        {
            "what": {
                "identifier": {"system": row["identifier_system"], "value": row["identifier_value"]}
            },
            "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type",
                     "code": "1", "display": "Person"},
            "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role",
                     "code": "1", "display": "Patient"},
        }
    ]  # fmt: skip
    if row["decision_ref"]:
        entity.append({"what": {"identifier": {"value": row["decision_ref"]}},
                       "name": "decision_ref"})  # fmt: skip
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": str(row["id"]),
        "type": {"system": _DCM, "code": "110110", "display": "Patient Record"},
        "subtype": [{"system": "http://hl7.org/fhir/restful-interaction", "code": row["action"]}],
        "action": _ACTION.get(row["action"], "R"),
        "recorded": row["occurred"].isoformat(),
        "outcome": "0" if row["outcome"] == "success" else "4",
        "outcomeDesc": row["outcome"],
        "agent": [agent],
        "source": {"observer": {"display": "malestrom"}},
        "entity": entity,
    }
    if row["purpose"]:
        event["purposeOfEvent"] = agent["purposeOfUse"]
    if row["correlation_id"]:
        event["extension"] = [
            {"url": "https://malestrom.no/fhir/StructureDefinition/correlation-id",
             "valueString": row["correlation_id"]}
        ]  # fmt: skip
    return event
