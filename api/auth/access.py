"""Who may see which patient, and the access log every read of personal data writes.

A citizen sees only themself. A person or system of the health service sees the patients of
their organisation (or its child organisations): those placed there by NEWS2 settings and
those whose readings the organisation's own systems sent. A clinician elsewhere (a hospital)
reads a patient only with a care relationship of the trust framework (purpose TREAT or a
specialisation), which the access log records with its decision reference.

The access record is written on the request's connection before the answer is sent; when it
cannot be written the read fails (503) rather than going unlogged. A refused read is recorded
too (outcome ``denied``, `record_refusal`): the patient sees who tried, and was turned away.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from api import queries
from api.auth.errors import ForbiddenError
from api.auth.principals import SCOPE_PREFIX, Kind, Principal, Scope
from ingestion.identifiers import patient_key, person_system

__all__ = [
    "AccessDeniedError",
    "Decision",
    "allowed_organisations",
    "authorise_organisation_data",
    "authorise_patients",
    "organisations_in_view",
    "own_identifier",
    "own_patient_key",
    "patient_access",
    "patient_key_access",
    "record_access",
    "record_refusal",
    "require_organisation",
    "require_person",
    "require_scope",
]


@dataclass(frozen=True, slots=True)
class Decision:
    """Why a read of a patient's data is allowed, as the access log records it."""

    basis: str  # own-data | organisation | care-relationship
    purpose: str | None = None
    decision_ref: str | None = None


class AccessDeniedError(ForbiddenError):
    """A read of named patients' data that was refused; the refusal itself is access-logged."""

    def __init__(self, message: str, *, principal: Principal, patient_keys: Sequence[str]) -> None:
        super().__init__(message)
        self.principal = principal
        self.patient_keys = tuple(patient_keys)


def require_scope(principal: Principal, *scopes: Scope) -> None:
    """Refuse unless the principal holds one of ``scopes``.

    Raises:
        ForbiddenError: with the scope to ask for.
    """
    if not principal.scopes.intersection(scopes):
        names = " ".join(SCOPE_PREFIX + s.value for s in scopes)
        raise ForbiddenError(f"this needs the scope {names}", scope=names)


def require_person(principal: Principal) -> None:
    """Refuse a system token where a person must answer for the act (alerts, settings).

    Raises:
        ForbiddenError: the token is a system's (client credentials), not a person's login.
    """
    if principal.kind is not Kind.PERSON:
        raise ForbiddenError("this needs a person's login (a HelseID user token), not a system's")


async def allowed_organisations(*, conn: AsyncConnection[Any], principal: Principal) -> list[str]:
    """The caller's organisation and its child organisations (empty for citizens)."""
    if principal.kind is Kind.CITIZEN or not principal.organisation:
        return []
    cur = await conn.execute(
        "SELECT org_id FROM organisations WHERE parent = %s", (principal.organisation,)
    )
    return [principal.organisation, *(r[0] for r in await cur.fetchall())]


def require_organisation(principal: Principal, organisations: Sequence[str], org: str) -> None:
    """Refuse acting for an organisation the caller does not belong to.

    Raises:
        ForbiddenError: ``org`` is not the caller's (or a child of it).
    """
    if principal.kind is Kind.CITIZEN or org not in organisations:
        raise ForbiddenError("this organisation is not yours (nor one of its units)")


async def organisations_in_view(
    *, conn: AsyncConnection[Any], principal: Principal, requested: str | None
) -> list[str]:
    """The organisations a list (board, alerts, stream) shows: the one asked for, which must
    be the caller's, or all of the caller's.

    Raises:
        ForbiddenError: a citizen, a caller without an organisation, or another organisation.
    """
    organisations = await allowed_organisations(conn=conn, principal=principal)
    if not organisations:
        raise ForbiddenError("the token names no organisation (orgnr_child or orgnr_parent)")
    if requested is None:
        return organisations
    require_organisation(principal, organisations, requested)
    return [requested]


async def authorise_organisation_data(
    *,
    conn: AsyncConnection[Any],
    principal: Principal,
    organisation: str | None,
    patient_keys: Sequence[str] = (),
) -> Decision:
    """Decide whether the caller may see data held under ``organisation`` (an alert about the
    patients ``patient_keys``).

    Raises:
        AccessDeniedError: not the caller's organisation and no care relationship.
    """
    organisations = await allowed_organisations(conn=conn, principal=principal)
    if organisation is not None and organisation in organisations:
        return Decision("organisation", *_purpose(principal))
    if principal.kind is not Kind.CITIZEN and principal.care is not None and principal.care.treats:
        return Decision("care-relationship", principal.care.purpose, principal.care.decision_ref)
    raise AccessDeniedError(
        "this belongs to another organisation, and the token has no care relationship",
        principal=principal,
        patient_keys=patient_keys,
    )


def _purpose(principal: Principal) -> tuple[str | None, str | None]:
    care = principal.care
    return (care.purpose, care.decision_ref) if care else (None, None)


async def authorise_patients(
    *,
    conn: AsyncConnection[Any],
    principal: Principal,
    identifier_value: str,
    keys: Sequence[str],
) -> Decision:
    """Decide whether the caller may read the patient that ``keys`` stand for.

    Raises:
        AccessDeniedError: not the citizen's own data, or no patient of the caller's
            organisation and no care relationship. The same answer for a patient who does not
            exist, so that the answer never tells whether someone is a patient here.
    """
    if principal.kind is Kind.CITIZEN:
        if identifier_value != principal.pid:
            raise AccessDeniedError(
                "a citizen can only see their own data", principal=principal, patient_keys=keys
            )
        return Decision("own-data")
    organisations = await allowed_organisations(conn=conn, principal=principal)
    if keys and organisations and await _all_belong(conn, keys, organisations):
        return Decision("organisation", *_purpose(principal))
    if principal.care is not None and principal.care.treats:
        return Decision("care-relationship", principal.care.purpose, principal.care.decision_ref)
    raise AccessDeniedError(
        "this patient is not a patient of your organisation, and the token carries no care "
        "relationship (authorization_details nhn:tillitsrammeverk:parameters, purpose TREAT)",
        principal=principal,
        patient_keys=keys,
    )


async def patient_access(
    *, conn: AsyncConnection[Any], principal: Principal, patient: queries.PatientRef
) -> tuple[list[str], Decision]:
    """The keys of the patient ``patient`` names, once the caller may read them.

    Raises:
        AccessDeniedError: the caller may not read this patient's data.
    """
    system, value = patient
    # The key is derived from the identifier, so the check holds before the first reading of a
    # patient is stored (its organisation was noted when the reading was accepted).
    named = str(patient_key(system or person_system(value), value))
    decision = await authorise_patients(
        conn=conn, principal=principal, identifier_value=value, keys=[named]
    )
    return await queries.patient_keys(conn=conn, patient=patient), decision


def own_identifier(principal: Principal) -> str:
    """A citizen's own patient identifier, ``system|value``, from their token's ``pid``."""
    pid = principal.pid or ""
    return f"{person_system(pid)}|{pid}"


def own_patient_key(principal: Principal) -> str:
    """A citizen's own patient key, from their token's ``pid``."""
    pid = principal.pid or ""
    return str(patient_key(person_system(pid), pid))


async def patient_key_access(
    *, conn: AsyncConnection[Any], principal: Principal, key: str
) -> Decision:
    """Decide whether the caller may read data of the patient with ``key`` (a read by id).

    Raises:
        AccessDeniedError: as `authorise_patients`.
    """
    if principal.kind is Kind.CITIZEN:
        if key != own_patient_key(principal):
            raise AccessDeniedError(
                "a citizen can only see their own data", principal=principal, patient_keys=[key]
            )
        return Decision("own-data")
    return await authorise_patients(conn=conn, principal=principal, identifier_value="", keys=[key])


async def _all_belong(
    conn: AsyncConnection[Any], keys: Sequence[str], organisations: Sequence[str]
) -> bool:
    cur = await conn.execute(
        """
        SELECT count(*) FROM unnest(%(keys)s::uuid[]) AS k(patient_key)
        WHERE EXISTS (SELECT 1 FROM patient_settings s
                      WHERE s.patient_key = k.patient_key AND s.organisation = ANY(%(orgs)s))
           OR EXISTS (SELECT 1 FROM patient_organisations p
                      WHERE p.patient_key = k.patient_key AND p.organisation = ANY(%(orgs)s))
        """,
        {"keys": list(keys), "orgs": list(organisations)},
    )
    row = await cur.fetchone()
    return row is not None and row[0] == len(keys)


async def record_access(
    *,
    conn: AsyncConnection[Any],
    principal: Principal,
    patient_keys: Iterable[str],
    action: str,
    resource: str,
    correlation_id: str | None,
    decision: Decision | None = None,
    outcome: str = "success",
    count: int | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Write one access record per patient whose data the answer shows (one when none)."""
    keys: list[str | None] = [*sorted(set(patient_keys))] or [None]
    purpose = decision.purpose if decision else None
    row = {
        "agent": principal.actor,
        "organisation": principal.organisation,
        "purpose": purpose,
        "action": action,
        "resource": resource,
        "outcome": outcome,
        "detail": Jsonb({**(detail or {}), **({"basis": decision.basis} if decision else {})}),
        "actor_kind": principal.kind.value,
        "actor_pid": principal.pid,
        "actor_hpr": principal.hpr,
        "actor_name": principal.name,
        "client_id": principal.client_id,
        "role": principal.role,
        "decision_ref": decision.decision_ref if decision else None,
        "correlation_id": correlation_id,
        "entity_count": count,
    }
    columns = ", ".join(["patient_key", *row])
    values = ", ".join(["%(patient_key)s", *(f"%({c})s" for c in row)])
    async with conn.cursor() as cur:
        await cur.executemany(
            f"INSERT INTO audit_events ({columns}) VALUES ({values})",  # noqa: S608 - our names
            [{"patient_key": key, **row} for key in keys],
        )


async def record_refusal(
    *, conn: AsyncConnection[Any], refusal: AccessDeniedError, resource: str, correlation_id: str
) -> None:
    """Write the access record of a refused read: who tried, which patient, and why not."""
    await record_access(
        conn=conn,
        principal=refusal.principal,
        patient_keys=refusal.patient_keys,
        action="refused",
        resource=resource,
        correlation_id=correlation_id,
        outcome="denied",
        detail={"reason": str(refusal)},
    )
