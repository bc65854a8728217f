"""NEWS2 settings (patients, organisations) and the nurse's board."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Query

from api import alerting
from api.auth.access import (
    allowed_organisations,
    organisations_in_view,
    patient_access,
    record_access,
    require_organisation,
    require_person,
)
from api.deps import CorrelationDep, PoolDep, ReadDep, SettingsDep, SettingsWriterDep
from api.known import register_organisations
from api.models import OrganisationSettingsUpdate, PatientSettingsUpdate
from api.routes import params as p
from api.routes.params import org_number_param
from ingestion.exceptions import InvalidReadingError
from ingestion.identifiers import parse_person_number, patient_key

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["news2"])

_LEVEL_RANK = {"none": 0, "urgent": 1, "emergency": 2}


@router.put("/patients/news2-settings")
async def put_patient_settings(
    body: PatientSettingsUpdate,
    pool: PoolDep,
    settings: SettingsDep,
    principal: SettingsWriterDep,
    correlation: CorrelationDep,
) -> dict[str, Any]:
    """Set a patient's NEWS2 settings: scale 2, home oxygen, organisation, windows, schedule.
    Who set them comes from the login; a patient of another organisation is refused."""
    require_person(principal)
    try:
        parse_person_number(
            body.patient.value, system=body.patient.system, mode=settings.identity_mode
        )
    except InvalidReadingError as exc:
        exc.expression = "patient.value"
        raise
    if body.organisation is not None:
        org_number_param(body.organisation, "organisation")
    key = str(patient_key(body.patient.system, body.patient.value))
    values = body.model_dump(exclude={"patient", "set_by"})
    async with pool.connection() as conn:
        organisations = await allowed_organisations(conn=conn, principal=principal)
        current = await alerting.get_patient_settings(conn=conn, patient_key=key)
        placed: set[str | None] = {body.organisation, (current or {}).get("organisation")}
        for org in placed - {None}:
            require_organisation(principal, organisations, str(org))
        if body.organisation is not None:
            await register_organisations(conn=conn, numbers={body.organisation}, by=principal.actor)
        await alerting.put_patient_settings(
            conn=conn,
            patient_key=key,
            identifier=(body.patient.system, body.patient.value),
            settings=values,
            set_by=principal.actor,
            now=_now(),
        )
        await record_access(
            conn=conn, principal=principal, patient_keys=[key], action="update",
            resource="news2-settings", correlation_id=correlation,
        )  # fmt: skip
    return {"patient_key": key, **values, "set_by": principal.actor}


@router.get("/patients/news2-settings")
async def get_patient_settings(
    pool: PoolDep,
    principal: ReadDep,
    correlation: CorrelationDep,
    identifier: str = Query(alias="patient.identifier"),
) -> dict[str, Any]:
    """A patient's NEWS2 settings, with who set them and when."""
    async with pool.connection() as conn:
        keys, decision = await patient_access(
            conn=conn, principal=principal, patient=p.patient_param(identifier)
        )
        found = await alerting.get_patient_settings(conn=conn, patient_key=keys[0])
        await record_access(
            conn=conn, principal=principal, patient_keys=keys if found else [],
            action="read", resource="news2-settings", correlation_id=correlation,
            decision=decision, outcome="success" if found else "not-found",
        )  # fmt: skip
    if found is None:
        raise InvalidReadingError("no NEWS2 settings for this patient", code="not-found")
    return found


@router.put("/organisations/{org_id}/news2-settings")
async def put_organisation_settings(
    org_id: str, body: OrganisationSettingsUpdate, pool: PoolDep, principal: SettingsWriterDep
) -> dict[str, Any]:
    """Set an organisation's escalation policy, freshness windows and acknowledgement time
    (one's own organisation or a unit of it)."""
    require_person(principal)
    org_number_param(org_id, "org_id")
    values = body.model_dump(exclude={"set_by"})
    async with pool.connection() as conn:
        organisations = await allowed_organisations(conn=conn, principal=principal)
        require_organisation(principal, organisations, org_id)
        await alerting.put_organisation_settings(
            conn=conn, org_id=org_id, settings=values, set_by=principal.actor, now=_now()
        )
    return {"org_id": org_id, **values, "set_by": principal.actor}


@router.get("/board")
async def board(
    pool: PoolDep,
    principal: ReadDep,
    correlation: CorrelationDep,
    organisation: str | None = None,
) -> dict[str, Any]:
    """Every patient of the organisation (default: all of the caller's): NEWS2, trend, input
    age, alert; most urgent first."""
    now = _now()
    async with pool.connection() as conn:
        organisations = await organisations_in_view(
            conn=conn, principal=principal, requested=organisation
        )
        rows = await alerting.organisation_board(conn=conn, organisations=organisations)
        await record_access(
            conn=conn, principal=principal, patient_keys=[r["patient_key"] for r in rows],
            action="read", resource="board", correlation_id=correlation, count=len(rows),
        )  # fmt: skip
    patients = sorted((_board_row(r, now) for r in rows), key=_urgency)
    shown = organisation or principal.organisation
    return {"organisation": shown, "generated_at": now.isoformat(), "patients": patients}


def _board_row(row: dict[str, Any], now: dt.datetime) -> dict[str, Any]:
    scores = row["scores"] or []
    latest = scores[0] if scores else None
    alert = None
    if row["alert_id"]:
        alert = {
            "id": row["alert_id"],
            "level": row["alert_level"],
            "status": row["alert_status"],
            "kind": row["alert_kind"],
            "raised_at": row["alert_raised_at"].isoformat(),
        }
    oldest = latest.get("oldest_input") if latest else None
    return {
        "patient": {"system": row["identifier_system"], "value": row["identifier_value"]},
        "news2": latest,
        "trend": _trend(scores),
        "oldest_input_age_seconds": (
            round((now - dt.datetime.fromisoformat(oldest)).total_seconds()) if oldest else None
        ),
        "alert": alert,
    }


def _trend(scores: list[dict[str, Any]]) -> str:
    """rising, falling or stable: the latest score against the one before (partial sums count)."""
    if len(scores) < 2:
        return "unknown"
    latest, before = (
        s["total"] if s["total"] is not None else s["partial_sum"] for s in scores[:2]
    )
    return "rising" if latest > before else "falling" if latest < before else "stable"


def _urgency(row: dict[str, Any]) -> tuple[int, int, int, int]:
    alert = row["alert"]
    news = row["news2"] or {}
    value = news.get("total") if news.get("total") is not None else news.get("partial_sum", -1)
    return (
        -_LEVEL_RANK.get(alert["level"], 0) if alert else 0,
        -_LEVEL_RANK.get(news.get("level", "none"), 0),
        -int(news.get("red_flag", False)),
        -(value if value is not None else -1),
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
