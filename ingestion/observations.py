"""FHIR R4 Observation → canonical `Measurement`, with errors that name the element.

Validation happens once, here at the edge: unambiguous slips are corrected (with warnings), the
structure is checked by a precompiled slim R4 validator (`ingestion.fhirmodel`), then
malestrom's own rules apply (identifier, code, unit, plausibility, time). What passes travels
onward as a slim `Measurement`.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ingestion.codes import LOINC, CodeInfo, lookup_code, supported_codes, valid_loinc
from ingestion.exceptions import InvalidReadingError
from ingestion.fhirmodel import validate_structure
from ingestion.identifiers import IdentityMode, PersonNumber, parse_person_number, patient_key
from ingestion.measurement import Coding, Measurement
from ingestion.outcomes import Issue
from ingestion.performers import read_performers
from ingestion.tolerance import tolerate
from ingestion.values import Value, read_value

__all__ = [
    "FUTURE_TOLERANCE",
    "LATE_AFTER",
    "Reading",
    "UnknownCodes",
    "observation_id",
    "parse_observation",
    "read_observation",
]

FUTURE_TOLERANCE = dt.timedelta(minutes=5)
LATE_AFTER = dt.timedelta(hours=24)
_ACCEPTED_STATUS = frozenset({"registered", "preliminary", "final", "amended", "corrected"})
_OBSERVATION_NAMESPACE = uuid.UUID("0b7c8f4e-6a52-4c1e-8e1f-2d0a5b9c3e71")
_VALUE_ELEMENTS = (
    "valueQuantity", "valueCodeableConcept", "valueString", "valueBoolean", "valueInteger",
    "valueRange", "valueRatio", "valueSampledData", "valueTime", "valueDateTime", "valuePeriod",
)  # fmt: skip


class UnknownCodes(StrEnum):
    """What to do with a code malestrom does not know (a deployment setting)."""

    REJECT = "reject"  # refuse, listing the supported codes
    STORE = "store"  # store as sent, flagged as not used for scoring


@dataclass(frozen=True, slots=True)
class Reading:
    """An accepted Observation and the warnings about what was corrected or flagged."""

    measurement: Measurement
    warnings: tuple[Issue, ...] = ()


def observation_id(identity: str) -> str:
    """Return the deterministic Observation id for a sender's identity of a reading."""
    return str(uuid.uuid5(_OBSERVATION_NAMESPACE, identity))


def parse_observation(
    resource: Any,
    *,
    path: str = "Observation",
    sender_identity: str | None = None,
    received: dt.datetime,
    mode: IdentityMode = IdentityMode.TEST,
    unknown_codes: UnknownCodes = UnknownCodes.REJECT,
) -> Measurement:
    """Validate one Observation and return its canonical measurement (see `read_observation`)."""
    return read_observation(
        resource,
        path=path,
        sender_identity=sender_identity,
        received=received,
        mode=mode,
        unknown_codes=unknown_codes,
    ).measurement


def read_observation(
    resource: Any,
    *,
    path: str = "Observation",
    sender_identity: str | None = None,
    received: dt.datetime,
    mode: IdentityMode = IdentityMode.TEST,
    unknown_codes: UnknownCodes = UnknownCodes.REJECT,
    municipality: str | None = None,
) -> Reading:
    """Validate one Observation and return its canonical measurement with warnings.

    Args:
        resource: The decoded JSON of the resource; slips are corrected in place.
        path: FHIRPath of the resource in the request, used in error expressions.
        sender_identity: The sender's identity of this reading (e.g. Bundle.identifier and
            entry.fullUrl); when None the Observation's identifier or a content hash is used.
        received: When malestrom received it (UTC); also the clock for the time checks.
        mode: Which person numbers this deployment accepts.
        unknown_codes: Whether an unsupported code is refused or stored unscored.
        municipality: The kommunenummer the Bundle is tagged with.

    Raises:
        InvalidReadingError: with ``expression`` pointing at the offending element.
    """
    warnings = _check_shape(resource, path)
    status = resource["status"]
    if status not in _ACCEPTED_STATUS:
        raise InvalidReadingError(
            f"status {status!r} is not a usable reading; use one of {sorted(_ACCEPTED_STATUS)}",
            expression=f"{path}.status",
            code="value",
        )
    system, value = _subject(resource, path, mode)
    info, codings = _code(resource, path, unknown_codes, warnings)
    effective = _effective(resource, path, received)
    late = received - effective > LATE_AFTER
    if late:
        warnings.append(_late_warning(resource, path))
    read = read_value(resource, path, info) if info else _unscored_value(resource)
    performers = read_performers(resource, path, mode)
    device = _device(resource)
    identifier = _first_identifier(resource)
    key = _patient_key(system, value)
    code = info.code if info else codings[0].code
    identity = sender_identity or (
        f"identifier|{identifier[0]}|{identifier[1]}" if identifier else None
    )
    measurement = Measurement(
        id=observation_id(identity or _content_identity(key, code, effective, device, read)),
        patient_key=key,
        patient_system=system,
        patient_value=value,
        code=code,
        effective=effective,
        received=received,
        value=read.value,
        unit=read.unit,
        components=read.components,
        codings=codings,
        status=status,
        device=device,
        organisation=performers.organisation[1] if performers.organisation else None,
        organisation_system=performers.organisation[0] if performers.organisation else None,
        author=performers.author,
        municipality=municipality,
        sender_identifier=identifier,
        value_code=read.value_code,
        on_oxygen=read.on_oxygen,
        scorable=info is not None,
        late=late,
    )
    return Reading(measurement, tuple(warnings))


def _check_shape(resource: Any, path: str) -> list[Issue]:
    if not isinstance(resource, dict):
        raise InvalidReadingError(
            "expected a JSON object; send the Observation as one", expression=path, code="structure"
        )
    if resource.get("resourceType") != "Observation":
        raise InvalidReadingError(
            f"expected resourceType 'Observation', got {resource.get('resourceType')!r}",
            expression=f"{path}.resourceType",
            code="structure",
        )
    warnings: list[Issue] = []
    try:
        validate_structure(resource, path)
    except InvalidReadingError:
        # Slow path only for what fails: every slip tolerate() corrects fails the validator.
        warnings = tolerate(resource, path)
        validate_structure(resource, path)
    values = [name for name in _VALUE_ELEMENTS if name in resource]
    if len(values) > 1:
        raise InvalidReadingError(
            f"an Observation has at most one value[x]; got {', '.join(values)}",
            expression=f"{path}.{values[1]}",
            code="structure",
        )
    return warnings


def _subject(resource: dict[str, Any], path: str, mode: IdentityMode) -> tuple[str, str]:
    ident = (resource.get("subject") or {}).get("identifier") or {}
    system, value = ident.get("system"), ident.get("value")
    where = f"{path}.subject.identifier"
    if not system:
        raise InvalidReadingError(
            "the patient is identified only by subject.identifier with a system; use "
            "urn:oid:2.16.578.1.12.4.1.4.1 for a fødselsnummer",
            expression=f"{where}.system",
            code="required",
        )
    if not value:
        raise InvalidReadingError(
            "subject.identifier.value is required", expression=f"{where}.value", code="required"
        )
    try:
        _person(value, system, mode)
    except InvalidReadingError as exc:
        exc.expression = f"{where}.value" if exc.code != "code-invalid" else f"{where}.system"
        raise
    return system, value


@functools.lru_cache(maxsize=65536)
def _patient_key(system: str, value: str) -> str:
    return str(patient_key(system, value))


@functools.lru_cache(maxsize=65536)
def _person(value: str, system: str, mode: IdentityMode) -> PersonNumber:
    # Senders repeat the same few patients in every Bundle: check each number once.
    return parse_person_number(value, system=system, mode=mode)


def _code(
    resource: dict[str, Any], path: str, unknown: UnknownCodes, warnings: list[Issue]
) -> tuple[CodeInfo | None, tuple[Coding, ...]]:
    codings = (resource.get("code") or {}).get("coding") or []
    kept = tuple(Coding(c.get("system", ""), c.get("code", ""), c.get("display")) for c in codings)
    found: CodeInfo | None = None
    for index, coding in enumerate(kept):
        where = f"{path}.code.coding[{index}].code"
        if coding.system == LOINC and not _valid_loinc(coding.code):
            raise InvalidReadingError(
                f"LOINC code {coding.code!r} has a wrong check digit (or is not a LOINC code)",
                expression=where,
                code="code-invalid",
            )
        info = lookup_code(coding.system, coding.code)
        if info is not None and found is not None and info is not found:
            raise InvalidReadingError(
                f"the codings disagree: {found.code} ({found.display}) and {info.code} "
                f"({info.display}); send codings of one measurement",
                expression=where,
                code="code-invalid",
            )
        found = found or info
    if found is not None:
        return found, kept
    if unknown is UnknownCodes.STORE and kept and kept[0].code:
        warnings.append(
            Issue(
                "warning",
                "code-unknown",
                "code not supported: stored as sent but not used for NEWS2 scoring",
                f"{path}.code.coding",
            )
        )
        return None, kept
    raise InvalidReadingError(
        "no supported coding in code.coding; supported: " + ", ".join(supported_codes()),
        expression=f"{path}.code.coding",
        code="code-invalid",
    )


_valid_loinc = functools.lru_cache(maxsize=4096)(valid_loinc)


def _effective(resource: dict[str, Any], path: str, received: dt.datetime) -> dt.datetime:
    texts = {n: resource[n] for n in ("effectiveDateTime", "effectiveInstant") if n in resource}
    if not texts:
        raise InvalidReadingError(
            "a measurement needs effectiveDateTime or effectiveInstant (date, time and timezone)",
            expression=f"{path}.effectiveDateTime",
            code="required",
        )
    name, text = next(iter(texts.items()))
    where = f"{path}.{name}"
    if "T" not in text:
        raise InvalidReadingError(
            "the measurement time needs a time of day and a timezone, "
            "e.g. 2026-11-26T08:30:00+01:00",
            expression=where,
            code="value",
        )
    when = _instant(text, where)
    if len(texts) > 1 and _instant(texts["effectiveInstant"], where) != when:
        raise InvalidReadingError(
            "effectiveDateTime and effectiveInstant disagree; send one measurement time",
            expression=f"{path}.effectiveInstant",
            code="structure",
        )
    if when > received + FUTURE_TOLERANCE:
        raise InvalidReadingError(
            "the measurement time is more than 5 minutes in the future; check the device clock",
            expression=where,
            code="value",
        )
    return when


def _instant(text: str, where: str) -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidReadingError(
            "not a FHIR dateTime; use e.g. 2026-11-26T08:30:00+01:00",
            expression=where,
            code="value",
        ) from exc
    if when.tzinfo is None:  # the structure check requires it; keep naive times impossible
        raise InvalidReadingError(
            "the time needs a timezone, e.g. +01:00 or Z", expression=where, code="value"
        )
    return when.astimezone(dt.UTC)


def _late_warning(resource: dict[str, Any], path: str) -> Issue:
    name = "effectiveDateTime" if "effectiveDateTime" in resource else "effectiveInstant"
    return Issue(
        "warning",
        "informational",
        "measured more than 24 hours before it was received: stored and flagged as late",
        f"{path}.{name}",
    )


def _unscored_value(resource: dict[str, Any]) -> Value:
    quantity = resource.get("valueQuantity") or {}
    value = quantity.get("value")
    unit = quantity.get("code") or quantity.get("unit")
    text = resource.get("valueString")
    return Value(
        value=float(value) if value is not None else None,
        unit=unit if value is not None else None,
        value_code=text if isinstance(text, str) else None,
    )


def _device(resource: dict[str, Any]) -> str | None:
    device = resource.get("device") or {}
    ident = device.get("identifier") or {}
    value = ident.get("value") or device.get("display")
    return str(value) if value else None


def _first_identifier(resource: dict[str, Any]) -> tuple[str, str] | None:
    for ident in resource.get("identifier") or []:
        if ident.get("value"):
            return ident.get("system", ""), ident["value"]
    return None


def _content_identity(
    key: str, code: str, effective: dt.datetime, device: str | None, read: Value
) -> str:
    parts = [key, code, effective.isoformat(), device or "", repr(read.value)]
    parts += [f"{c.code}={c.value!r}" for c in read.components]
    if read.value_code is not None:
        parts.append(read.value_code)
    return "content|" + hashlib.sha256("|".join(parts).encode()).hexdigest()
