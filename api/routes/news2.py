"""NEWS2 settings (patients, organisations) and the nurse's board."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Query

from api import alerting, queries
from api.deps import PoolDep, SettingsDep
from api.models import OrganisationSettingsUpdate, PatientSettingsUpdate
from ingestion.exceptions import InvalidReadingError
from ingestion.identifiers import parse_person_number, patient_key

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["news2"])

_LEVEL_RANK = {"none": 0, "urgent": 1, "emergency": 2}


@router.put("/patients/news2-settings")
async def put_patient_settings(
    body: PatientSettingsUpdate, pool: PoolDep, settings: SettingsDep
) -> dict[str, Any]:
    """Set a patient's NEWS2 settings: scale 2, home oxygen, organisation, windows, schedule."""
    try:
        parse_person_number(
            body.patient.value, system=body.patient.system, mode=settings.identity_mode
        )
    except InvalidReadingError as exc:
        exc.expression = "patient.value"
        raise
    key = str(patient_key(body.patient.system, body.patient.value))
    values = body.model_dump(exclude={"patient", "set_by"})
    async with pool.connection() as conn:
        await alerting.put_patient_settings(
            conn=conn,
            patient_key=key,
            identifier=(body.patient.system, body.patient.value),
            settings=values,
            set_by=body.set_by,
            now=_now(),
        )
    return {"patient_key": key, **values, "set_by": body.set_by}


@router.get("/patients/news2-settings")
async def get_patient_settings(
    pool: PoolDep,
    identifier: str = Query(alias="patient.identifier"),
    agent: str = Query("anonymous", description="who reads, for the access log"),
) -> dict[str, Any]:
    """A patient's NEWS2 settings, with who set them and when."""
    system, _, value = identifier.rpartition("|")
    key = str(patient_key(system or "urn:oid:2.16.578.1.12.4.1.4.1", value))
    async with pool.connection() as conn:
        found = await alerting.get_patient_settings(conn=conn, patient_key=key)
        await queries.record_audit(
            conn=conn,
            patient_keys={key} if found else set(),
            agent=agent,
            action="read",
            resource="news2-settings",
            outcome="success" if found else "not-found",
        )
    if found is None:
        raise InvalidReadingError("no NEWS2 settings for this patient", code="not-found")
    return found


@router.put("/organisations/{org_id}/news2-settings")
async def put_organisation_settings(
    org_id: str, body: OrganisationSettingsUpdate, pool: PoolDep
) -> dict[str, Any]:
    """Set an organisation's escalation policy, freshness windows and acknowledgement time."""
    values = body.model_dump(exclude={"set_by"})
    async with pool.connection() as conn:
        await alerting.put_organisation_settings(
            conn=conn, org_id=org_id, settings=values, set_by=body.set_by, now=_now()
        )
    return {"org_id": org_id, **values, "set_by": body.set_by}


@router.get("/board")
async def board(
    pool: PoolDep,
    organisation: str,
    agent: str = Query("anonymous", description="who reads, for the access log"),
) -> dict[str, Any]:
    """Every patient of the organisation: NEWS2, trend, input age, alert; most urgent first."""
    now = _now()
    async with pool.connection() as conn:
        rows = await alerting.organisation_board(conn=conn, organisation=organisation)
        await queries.record_audit(
            conn=conn,
            patient_keys={r["patient_key"] for r in rows},
            agent=agent,
            action="read",
            resource="board",
            outcome="success",
            organisation=organisation,
        )
    patients = sorted((_board_row(r, now) for r in rows), key=_urgency)
    return {"organisation": organisation, "generated_at": now.isoformat(), "patients": patients}


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
