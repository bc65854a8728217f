"""Canonical `Measurement` → normalised FHIR R4 Observation (a plain dict, ready for JSON).

The Observation id is the measurement's deterministic id; the canonical LOINC coding comes first
and every coding the sender used is kept after it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from ingestion.codes import LOINC, UCUM, lookup_code
from ingestion.measurement import Coding, Measurement

__all__ = ["VITAL_SIGNS_CATEGORY", "to_observation"]

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
        obs["identifier"] = [{"system": m.sender_identifier[0], "value": m.sender_identifier[1]}]
    if m.value is not None and m.unit is not None:
        obs["valueQuantity"] = _quantity(m.value, m.unit)
    if m.components:
        obs["component"] = [
            {
                "code": {"coding": [{"system": LOINC, "code": c.code}]},
                "valueQuantity": _quantity(c.value, c.unit),
            }
            for c in m.components
        ]
    if m.device:
        obs["device"] = {"identifier": {"value": m.device}}
    return obs


def _codings(m: Measurement) -> list[dict[str, str]]:
    info = lookup_code(LOINC, m.code)
    canonical = Coding(LOINC, m.code, info.display if info else None)
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
