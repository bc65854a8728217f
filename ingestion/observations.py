"""FHIR R4 Observation → canonical `Measurement`, with errors that name the element.

Validation happens once, here at the edge: the resource is checked against the R4B model of
fhir.resources, then against malestrom's own rules (identifier, code, unit, time). What passes
travels onward as a slim `Measurement`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from typing import Any

from fhir.resources.R4B.observation import Observation
from pydantic import ValidationError

from ingestion.codes import UCUM, CodeInfo, lookup_code, supported_codes
from ingestion.exceptions import InvalidReadingError
from ingestion.identifiers import IdentityMode, parse_person_number, patient_key
from ingestion.measurement import Coding, Component, Measurement

__all__ = ["FUTURE_TOLERANCE", "observation_id", "parse_observation"]

FUTURE_TOLERANCE = dt.timedelta(minutes=5)
_ACCEPTED_STATUS = frozenset({"registered", "preliminary", "final", "amended", "corrected"})
_OBSERVATION_NAMESPACE = uuid.UUID("0b7c8f4e-6a52-4c1e-8e1f-2d0a5b9c3e71")


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
) -> Measurement:
    """Validate one Observation and return its canonical measurement.

    Args:
        resource: The decoded JSON of the resource.
        path: FHIRPath of the resource in the request, used in error expressions.
        sender_identity: The sender's identity of this reading (e.g. Bundle.identifier and
            entry.fullUrl); when None the Observation's identifier or a content hash is used.
        received: When malestrom received it (UTC); also the clock for the future check.
        mode: Which person numbers this deployment accepts.

    Raises:
        InvalidReadingError: with ``expression`` pointing at the offending element.
    """
    if not isinstance(resource, dict):
        raise InvalidReadingError("expected a JSON object", expression=path, code="structure")
    if resource.get("resourceType") != "Observation":
        raise InvalidReadingError(
            f"expected resourceType 'Observation', got {resource.get('resourceType')!r}",
            expression=f"{path}.resourceType",
            code="not-supported",
        )
    _validate_fhir(resource, path)
    status = resource["status"]
    if status not in _ACCEPTED_STATUS:
        raise InvalidReadingError(
            f"status {status!r} is not a usable reading; use one of {sorted(_ACCEPTED_STATUS)}",
            expression=f"{path}.status",
            code="value",
        )
    system, value = _subject(resource, path, mode)
    info, codings = _code(resource, path)
    effective = _effective(resource, path, received)
    quantity, unit, components = _values(resource, path, info)
    device = _device(resource)
    identifier = _first_identifier(resource)
    identity = sender_identity or (
        f"identifier|{identifier[0]}|{identifier[1]}" if identifier else None
    )
    key = str(patient_key(system, value))
    if identity is None:
        identity = _content_identity(key, info.code, effective, device, quantity, components)
    return Measurement(
        id=observation_id(identity),
        patient_key=key,
        patient_system=system,
        patient_value=value,
        code=info.code,
        effective=effective,
        received=received,
        value=quantity,
        unit=unit,
        components=components,
        codings=codings,
        status=status,
        device=device,
        sender_identifier=identifier,
    )


def _validate_fhir(resource: dict[str, Any], path: str) -> None:
    try:
        Observation.model_validate(resource)
    except ValidationError as exc:
        first = exc.errors()[0]
        location = "".join(
            f"[{part}]" if isinstance(part, int) else f".{part}" for part in first["loc"]
        )
        raise InvalidReadingError(
            f"not a valid FHIR R4 Observation: {first['msg']}",
            expression=f"{path}{location}",
            code="structure",
        ) from exc


def _subject(resource: dict[str, Any], path: str, mode: IdentityMode) -> tuple[str, str]:
    ident = (resource.get("subject") or {}).get("identifier") or {}
    system, value = ident.get("system"), ident.get("value")
    where = f"{path}.subject.identifier"
    if not system:
        raise InvalidReadingError(
            "the patient is identified only by subject.identifier with a system",
            expression=f"{where}.system",
            code="required",
        )
    if not value:
        raise InvalidReadingError(
            "subject.identifier.value is required", expression=f"{where}.value", code="required"
        )
    try:
        parse_person_number(value, system=system, mode=mode)
    except InvalidReadingError as exc:
        exc.expression = f"{where}.value" if exc.code != "code-invalid" else f"{where}.system"
        raise
    return system, value


def _code(resource: dict[str, Any], path: str) -> tuple[CodeInfo, tuple[Coding, ...]]:
    codings = (resource.get("code") or {}).get("coding") or []
    kept = tuple(Coding(c.get("system", ""), c.get("code", ""), c.get("display")) for c in codings)
    for coding in kept:
        info = lookup_code(coding.system, coding.code)
        if info is not None:
            return info, kept
    raise InvalidReadingError(
        "no supported coding in code.coding; supported: " + ", ".join(supported_codes()),
        expression=f"{path}.code.coding",
        code="code-invalid",
    )


def _effective(resource: dict[str, Any], path: str, received: dt.datetime) -> dt.datetime:
    for name in ("effectiveDateTime", "effectiveInstant"):
        text = resource.get(name)
        if text:
            break
    else:
        raise InvalidReadingError(
            "a measurement needs effectiveDateTime or effectiveInstant (date, time and timezone)",
            expression=f"{path}.effectiveDateTime",
            code="required",
        )
    where = f"{path}.{name}"
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidReadingError(
            f"{text!r} is not a FHIR dateTime", expression=where, code="value"
        ) from exc
    if "T" not in text or when.tzinfo is None:
        raise InvalidReadingError(
            "the measurement time needs a time of day and a timezone, "
            "e.g. 2026-11-26T08:30:00+01:00",
            expression=where,
            code="value",
        )
    when = when.astimezone(dt.UTC)
    if when > received + FUTURE_TOLERANCE:
        raise InvalidReadingError(
            "the measurement time is more than 5 minutes in the future; check the device clock",
            expression=where,
            code="value",
        )
    return when


def _values(
    resource: dict[str, Any], path: str, info: CodeInfo
) -> tuple[float | None, str | None, tuple[Component, ...]]:
    if info.components:
        return None, None, _components(resource, path, info)
    quantity = resource.get("valueQuantity")
    if not quantity or quantity.get("value") is None:
        raise InvalidReadingError(
            f"{info.display} needs valueQuantity with a value in {info.unit!r}",
            expression=f"{path}.valueQuantity.value",
            code="required",
        )
    return float(quantity["value"]), _unit(quantity, f"{path}.valueQuantity", info.unit), ()


def _components(resource: dict[str, Any], path: str, info: CodeInfo) -> tuple[Component, ...]:
    by_code: dict[str, tuple[int, dict[str, Any]]] = {}
    for index, component in enumerate(resource.get("component") or []):
        for coding in (component.get("code") or {}).get("coding") or []:
            by_code.setdefault(coding.get("code", ""), (index, component))
    found = []
    for part in info.components:
        if part.code not in by_code:
            raise InvalidReadingError(
                f"{info.display} needs a component coded {part.code} ({part.display})",
                expression=f"{path}.component",
                code="required",
            )
        index, component = by_code[part.code]
        where = f"{path}.component[{index}].valueQuantity"
        quantity = component.get("valueQuantity") or {}
        if quantity.get("value") is None:
            raise InvalidReadingError(
                f"{part.display} needs a value", expression=f"{where}.value", code="required"
            )
        _unit(quantity, where, part.unit)
        found.append(Component(part.code, float(quantity["value"]), part.unit))
    return tuple(found)


def _unit(quantity: dict[str, Any], where: str, expected: str | None) -> str | None:
    code = quantity.get("code") or quantity.get("unit")
    system = quantity.get("system")
    if system not in (None, UCUM) or code != expected:
        raise InvalidReadingError(
            f"unit must be UCUM {expected!r}; got {code!r}",
            expression=f"{where}.code",
            code="value",
        )
    return expected


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
    key: str,
    code: str,
    effective: dt.datetime,
    device: str | None,
    value: float | None,
    components: tuple[Component, ...],
) -> str:
    parts = [key, code, effective.isoformat(), device or "", repr(value)]
    parts += [f"{c.code}={c.value!r}" for c in components]
    return "content|" + hashlib.sha256("|".join(parts).encode()).hexdigest()
