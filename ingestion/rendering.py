"""Canonical `Measurement` → normalised FHIR R4 Observation (a plain dict, ready for JSON).

The Observation id is the measurement's deterministic id; the canonical coding comes first and
every coding the sender used is kept after it. The performer slices (author, responsible
organisation) and the municipality (``meta.tag``) are kept; flags for late and unscored
readings are ``meta.tag`` codes in `MALESTROM_TAGS`; the sending system (from its access
token) is the `SENDER_EXTENSION`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from ingestion.codes import LOINC, SNOMED, UCUM, canonical_info
from ingestion.measurement import Coding, Measurement
from ingestion.news2_inputs import ACVPU_VALUES

__all__ = [
    "KOMMUNENUMMER_SYSTEM",
    "MALESTROM_TAGS",
    "SENDER_EXTENSION",
    "VITAL_SIGNS_CATEGORY",
    "code_system_of",
    "components_of",
    "to_observation",
]

KOMMUNENUMMER_SYSTEM = (
    "https://register.geonorge.no/sosi-kodelister/inndelinger/inndelingsbase/kommunenummer"
)
MALESTROM_TAGS = "https://malestrom.no/fhir/CodeSystem/reading-flags"
SENDER_EXTENSION = "https://malestrom.no/fhir/StructureDefinition/received-from"
_ACVPU_BY_LETTER = {letter: code for code, letter in ACVPU_VALUES.items()}

VITAL_SIGNS_CATEGORY = {
    "coding": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "vital-signs",
            "display": "Vital Signs",
        }
    ]
}


def to_observation(m: Measurement) -> dict[str, Any]:
    """Render a measurement as a normalised FHIR R4 Observation."""
    obs: dict[str, Any] = {
        "resourceType": "Observation",
        "id": m.id,
        "status": m.status,
        "category": [VITAL_SIGNS_CATEGORY],
        "code": {"coding": _codings(m)},
        "subject": {"identifier": {"system": m.patient_system, "value": m.patient_value}},
        "effectiveDateTime": _instant(m.effective),
        "issued": _instant(m.received),
    }
    if m.sender_identifier:
        system, value = m.sender_identifier
        obs["identifier"] = [({"system": system} if system else {}) | {"value": value}]
    if m.value is not None and m.unit is not None:
        obs["valueQuantity"] = _quantity(m.value, m.unit)
    if m.components:
        obs["component"] = components_of(m)
    if m.value_code is not None:
        obs.update(_coded_value(m))
    if m.device:
        obs["device"] = {"identifier": {"value": m.device}}
    performers = _performers(m)
    if performers:
        obs["performer"] = performers
    tags = _tags(m)
    if tags:
        obs["meta"] = {"tag": tags}
    if m.client_id or m.client_organisation:
        obs["extension"] = [_sender(m)]
    return obs


def components_of(m: Measurement) -> list[dict[str, Any]]:
    """The ``component`` list of the rendered Observation (empty for a single value)."""
    return [
        {
            "code": {"coding": [{"system": LOINC, "code": c.code}]},
            "valueQuantity": _quantity(c.value, c.unit),
        }
        for c in m.components
    ]


def code_system_of(m: Measurement) -> str:
    """The system of the rendered Observation's first coding (the canonical one, if known)."""
    info = canonical_info(m.code)
    if info is not None:
        return info.system
    return m.codings[0].system if m.codings else ""


def _sender(m: Measurement) -> dict[str, Any]:
    """Which system sent the reading (its HelseID client id and organisation number)."""
    parts: list[dict[str, Any]] = []
    if m.client_id:
        parts.append({"url": "client", "valueString": m.client_id})
    if m.client_organisation:
        org = {"system": "urn:oid:2.16.578.1.12.4.1.4.101", "value": m.client_organisation}
        parts.append({"url": "organisation", "valueIdentifier": org})
    return {"url": SENDER_EXTENSION, "extension": parts}


def _coded_value(m: Measurement) -> dict[str, Any]:
    code = _ACVPU_BY_LETTER.get(m.value_code or "")
    if code is None:
        return {"valueString": m.value_code}
    return {
        "valueCodeableConcept": {"coding": [{"system": SNOMED, "code": code}], "text": m.value_code}
    }


def _performers(m: Measurement) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if m.author:
        out.append({"identifier": {"system": m.author[0], "value": m.author[1]}})
    if m.organisation:
        ident = {"system": m.organisation_system or "", "value": m.organisation}
        out.append({"type": "Organization", "identifier": ident})
    return out


def _tags(m: Measurement) -> list[dict[str, str]]:
    tags = []
    if m.municipality:
        tags.append({"system": KOMMUNENUMMER_SYSTEM, "code": m.municipality})
    if m.late:
        tags.append({"system": MALESTROM_TAGS, "code": "late"})
    if not m.scorable:
        tags.append({"system": MALESTROM_TAGS, "code": "not-scored"})
    return tags


def _codings(m: Measurement) -> list[dict[str, str]]:
    info = canonical_info(m.code)
    if info is None:  # an unknown code stored by setting: the sender's codings as they were
        return [_coding(c) for c in m.codings]
    canonical = Coding(info.system, m.code, info.display)
    seen = {(canonical.system, canonical.code)}
    out = [_coding(canonical)]
    for coding in m.codings:
        if (coding.system, coding.code) not in seen:
            seen.add((coding.system, coding.code))
            out.append(_coding(coding))
    return out


def _coding(c: Coding) -> dict[str, str]:
    out = {"system": c.system, "code": c.code}
    if c.display:
        out["display"] = c.display
    return out


def _quantity(value: float, unit: str) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": UCUM, "code": unit}


def _instant(when: dt.datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")
