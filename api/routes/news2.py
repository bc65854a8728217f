"""NEWS2 settings (patients, organisations) and the nurse's board."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Query, Request
from pydantic import ValidationError

from api import alerting
from api.auth.access import (
    allowed_organisations,
    organisations_in_view,
    patient_access,
    record_access,
    require_organisation,
    require_person,
)
from api.auth.principals import Principal
from api.deps import CorrelationDep, PoolDep, ReadDep, SettingsDep, SettingsWriterDep
from api.known import register_organisations
from api.models import OrganisationSettingsUpdate, PatientSettingsUpdate
from api.routes import params as p
from api.routes.params import org_number_param
from ingestion.exceptions import InvalidReadingError
from ingestion.identifiers import FNR_SYSTEM, parse_person_number, patient_key
from ingestion.receiver import read_json

__all__ = ["board_row", "router", "urgency"]

router = APIRouter(prefix="/api/v1", tags=["news2"])

_LEVEL_RANK = {"none": 0, "urgent": 1, "emergency": 2}


_CLINICAL = ("spo2_scale", "long_term_oxygen")  # a PUT that leaves one out is refused
MERGE_PATCH = "application/merge-patch+json"


@router.put("/patients/news2-settings")
async def put_patient_settings(
    body: PatientSettingsUpdate,
    pool: PoolDep,
    settings: SettingsDep,
    principal: SettingsWriterDep,
    correlation: CorrelationDep,
) -> dict[str, Any]:
    """Replace a patient's NEWS2 settings: scale 2, home oxygen, organisation, windows,
    schedule. The whole document: leaving out scale or oxygen is refused (422), so nothing
    clinical is ever reset by omission; PATCH changes single fields. Who set them comes from
    the login; a patient of another organisation is refused."""
    require_person(principal)
    for name in _CLINICAL:
        if name not in body.model_fields_set:
            raise InvalidReadingError(
                f"{name} is missing: PUT replaces all the settings, so send it (long_term_oxygen "
                "may be null: unknown), or PATCH only the fields that change",
                expression=name,
                code="required",
            )
    return await _store(body, pool, settings, principal, correlation)


@router.patch(
    "/patients/news2-settings",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {MERGE_PATCH: {"schema": {"type": "object"}}},
            "description": "a JSON merge patch (RFC 7396) of the settings",
        }
    },
)
async def patch_patient_settings(
    request: Request,
    pool: PoolDep,
    settings: SettingsDep,
    principal: SettingsWriterDep,
    correlation: CorrelationDep,
    identifier: str = Query(alias="patient.identifier"),
) -> dict[str, Any]:
    """Change only the settings the JSON merge patch names (RFC 7396); the rest stay."""
    require_person(principal)
    patch = await read_json(request, media_types=(MERGE_PATCH, "application/json"))
    if not isinstance(patch, dict):
        raise InvalidReadingError("a merge patch is a JSON object", code="structure")
    if "patient" in patch:
        raise InvalidReadingError(
            "the patient is named by patient.identifier, not in the patch", expression="patient"
        )
    system, value = p.patient_param(identifier)
    system = system or FNR_SYSTEM
    async with pool.connection() as conn:
        current = await alerting.get_patient_settings(
            conn=conn, patient_key=str(patient_key(system, value))
        )
    if current is None:
        raise InvalidReadingError(
            "no NEWS2 settings for this patient yet; PUT them first", code="not-found"
        )
    document = {k: v for k, v in current.items() if k not in ("set_by", "set_at")}
    for name, change in patch.items():
        if change is None:
            document.pop(name, None)
        else:
            document[name] = change
    body = _validated({**document, "patient": {"system": system, "value": value}})
    return await _store(body, pool, settings, principal, correlation)


def _validated(document: dict[str, Any]) -> PatientSettingsUpdate:
    try:
        return PatientSettingsUpdate.model_validate(document)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise InvalidReadingError(f"{where}: {error['msg']}", expression=where) from exc


async def _store(
    body: PatientSettingsUpdate,
    pool: PoolDep,
    settings: SettingsDep,
    principal: Principal,
    correlation: str,
) -> dict[str, Any]:
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
        found = (
            await alerting.get_patient_settings(conn=conn, patient_key=keys[0]) if keys else None
        )
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
    if "policy" not in body.model_fields_set:
        raise InvalidReadingError(
            "policy is missing: PUT replaces all the settings, so send the escalation policy "
            '(e.g. {"rule": "rcp"})',
            expression="policy",
            code="required",
        )
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
    patients = sorted((board_row(r, now) for r in rows), key=urgency)
    shown = organisation or principal.organisation
    return {"organisation": shown, "generated_at": now.isoformat(), "patients": patients}


def board_row(row: dict[str, Any], now: dt.datetime) -> dict[str, Any]:
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


def urgency(row: dict[str, Any]) -> tuple[int, int, int, int]:
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
