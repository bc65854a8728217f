"""Who calls: a `Principal` made from a verified access token's claims.

Three kinds: a *person* of the health service (HelseID user token: national identity number at
security level 4, HPR number when authorised, organisation number), a *system* (HelseID client
credentials: a hub, a platform, an EPJ; identified by client id and organisation), and a
*citizen* (ID-porten / Helsenorge at a high level, reading their own data).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson

from api.auth.errors import ForbiddenError, InvalidTokenError
from api.auth.tokens import IssuerKind, VerifiedToken
from ingestion.exceptions import InvalidReadingError
from ingestion.identifiers import IdentityMode, parse_person_number, person_system
from ingestion.performers import valid_org_number

__all__ = [
    "SCOPE_PREFIX",
    "CareRelationship",
    "Kind",
    "Principal",
    "Scope",
    "principal_from",
]

SCOPE_PREFIX = "nhn:malestrom/"
PID = "helseid://claims/identity/pid"
SECURITY_LEVEL = "helseid://claims/identity/security_level"
ASSURANCE_LEVEL = "helseid://claims/identity/assurance_level"
HPR_NUMBER = "helseid://claims/hpr/hpr_number"
NAME = "helseid://claims/identity/name"
ORGNR_PARENT = "helseid://claims/client/claims/orgnr_parent"
ORGNR_CHILD = "helseid://claims/client/claims/orgnr_child"
TRUST_FRAMEWORK = "nhn:tillitsrammeverk:parameters"
CITIZEN_LEVELS = frozenset({"idporten-loa-high", "Level4"})
# HL7 v3 PurposeOfUse: treatment and its specialisations (emergency, break-the-glass).
TREAT_FAMILY = frozenset({"TREAT", "ETREAT", "ERTREAT", "BTG", "COC", "CLINTRCHPC"})


class Scope(StrEnum):
    """What a token allows, as ``nhn:malestrom/<name>`` in its ``scope`` claim."""

    INGEST = "ingest"
    READ = "read"
    ALERTS = "alerts"
    SETTINGS = "settings"
    ADMIN = "admin"
    CITIZEN = "citizen"


class Kind(StrEnum):
    """The three kinds of caller."""

    PERSON = "person"
    SYSTEM = "system"
    CITIZEN = "citizen"


@dataclass(frozen=True, slots=True)
class CareRelationship:
    """The trust framework's care relationship: why a clinician elsewhere may read."""

    purpose: str  # e.g. TREAT
    decision_ref: str | None = None
    healthcare_service: str | None = None

    @property
    def treats(self) -> bool:
        """True when the purpose is treatment (TREAT or a specialisation of it)."""
        return self.purpose in TREAT_FAMILY


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of one request, as its token says."""

    kind: Kind
    scopes: frozenset[Scope]
    client_id: str | None = None
    pid: str | None = None  # a person's or citizen's identity number; never logged
    hpr: str | None = None
    name: str | None = None
    organisation: str | None = None  # the child organisation number, else the parent's
    parent_organisation: str | None = None
    care: CareRelationship | None = None
    jkt: str | None = None

    @property
    def actor(self) -> str:
        """Who acted, as stored beside what they did (no identity number)."""
        if self.hpr:
            return f"HPR {self.hpr}"
        if self.kind is Kind.PERSON:
            return f"{self.name or 'helsepersonell'} ({self.organisation})"
        return f"klient {self.client_id}"

    @property
    def role(self) -> str:
        """The role recorded in the access log."""
        if self.kind is Kind.CITIZEN:
            return "citizen"
        if self.kind is Kind.SYSTEM:
            return "system"
        return "clinician" if self.hpr else "health-personnel"


def principal_from(token: VerifiedToken, *, mode: IdentityMode) -> Principal:
    """Build the principal of a verified token, checking the claims its kind requires.

    Raises:
        InvalidTokenError: the claims do not make a valid caller.
        ForbiddenError: the token carries no malestrom scope this issuer may grant.
    """
    claims = token.claims
    scopes = _scopes(claims.get("scope"))
    if Scope.CITIZEN in scopes:
        if IssuerKind.CITIZEN not in token.issuer.kinds:
            raise InvalidTokenError("the citizen scope is only valid from the citizen issuer")
        if scopes != {Scope.CITIZEN}:
            raise InvalidTokenError("a citizen token carries no staff scopes")
        return _citizen(claims, scopes, mode)
    if IssuerKind.STAFF not in token.issuer.kinds:
        raise ForbiddenError("a citizen token needs the citizen scope", scope=_scope(Scope.CITIZEN))
    if not scopes:
        raise ForbiddenError("the token carries no nhn:malestrom/ scope", scope=_scope(Scope.READ))
    return _staff(claims, scopes, mode)


def _citizen(claims: dict[str, Any], scopes: frozenset[Scope], mode: IdentityMode) -> Principal:
    if claims.get("acr") not in CITIZEN_LEVELS:
        raise InvalidTokenError("a citizen token needs acr idporten-loa-high or Level4")
    pid = _person_number(claims.get("pid"), "pid", mode)
    return Principal(Kind.CITIZEN, scopes, client_id=_str(claims.get("client_id")), pid=pid)


def _staff(claims: dict[str, Any], scopes: frozenset[Scope], mode: IdentityMode) -> Principal:
    child, parent = (
        _org(claims.get(ORGNR_CHILD), "orgnr_child"),
        _org(claims.get(ORGNR_PARENT), "orgnr_parent"),
    )
    common = {
        "scopes": scopes,
        "client_id": _str(claims.get("client_id")),
        "organisation": child or parent,
        "parent_organisation": parent if child else None,
        "care": _care(claims.get("authorization_details")),
    }
    if claims.get(PID) is None:
        if any(claims.get(c) is not None for c in (SECURITY_LEVEL, HPR_NUMBER)):
            raise InvalidTokenError(f"a user token needs the claim {PID}")
        return Principal(Kind.SYSTEM, **common)  # type: ignore[arg-type]
    level, assurance = str(claims.get(SECURITY_LEVEL, "")), claims.get(ASSURANCE_LEVEL)
    if level != "4" and not (claims.get(SECURITY_LEVEL) is None and assurance == "high"):
        raise InvalidTokenError("a user token needs security level 4")
    hpr = claims.get(HPR_NUMBER)
    if hpr is not None and not (isinstance(hpr, str | int) and str(hpr).isdigit()):
        raise InvalidTokenError(f"{HPR_NUMBER} must be digits")
    return Principal(
        Kind.PERSON,
        pid=_person_number(claims.get(PID), PID, mode),
        hpr=str(hpr) if hpr is not None else None,
        name=_str(claims.get(NAME)),
        **common,  # type: ignore[arg-type]
    )


def _scopes(value: Any) -> frozenset[Scope]:
    names = value.split() if isinstance(value, str) else value if isinstance(value, list) else []
    known = {s.value for s in Scope}
    return frozenset(
        Scope(n.removeprefix(SCOPE_PREFIX))
        for n in names
        if isinstance(n, str)
        and n.startswith(SCOPE_PREFIX)
        and n.removeprefix(SCOPE_PREFIX) in known
    )


def _scope(scope: Scope) -> str:
    return SCOPE_PREFIX + scope.value


def _person_number(value: Any, claim: str, mode: IdentityMode) -> str:
    if not isinstance(value, str):
        raise InvalidTokenError(f"the token needs the claim {claim}")
    try:
        parse_person_number(value, system=person_system(value), mode=mode)
    except InvalidReadingError as exc:
        raise InvalidTokenError(f"{claim} is not a valid identity number here") from exc
    return value


def _org(value: Any, name: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not valid_org_number(value):
        raise InvalidTokenError(f"{name} must be a 9-digit organisation number (mod-11)")
    return value


def _care(value: Any) -> CareRelationship | None:
    """The care relationship of the trust framework's ``authorization_details``, if any."""
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise InvalidTokenError("authorization_details is not JSON") from exc
    details = value if isinstance(value, list) else [value] if isinstance(value, dict) else []
    for detail in details:
        if not isinstance(detail, dict) or detail.get("type") != TRUST_FRAMEWORK:
            continue
        care = detail.get("care_relationship")
        if not isinstance(care, dict):
            continue
        purpose = _code(care.get("purpose_of_use"))
        if purpose:
            decision = care.get("decision_ref")
            ref = decision.get("id") if isinstance(decision, dict) else decision
            return CareRelationship(purpose, _str(ref), _code(care.get("healthcare_service")))
    return None


def _code(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("code")
    return value if isinstance(value, str) and value else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
