"""A NEWS2 score as a FHIR R4 Observation, coded as NEWS2.md and HL7 Norway's
``vkp-Observation-NEWS2score`` do: SNOMED CT total, seven subscore components, ``derivedFrom``."""

from __future__ import annotations

import datetime as dt
from typing import Any

from ingestion.codes import NEWS2_CODE
from streams.scoring import ScoredSet

__all__ = ["BAND_SYSTEM", "EXTENSIONS", "NEWS2_CODE", "SNOMED", "to_news2_observation"]

SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
BAND_SYSTEM = "https://malestrom.no/fhir/CodeSystem/news2-band"
EXTENSIONS = "https://malestrom.no/fhir/StructureDefinition"
_DATA_ABSENT = "http://terminology.hl7.org/CodeSystem/data-absent-reason"

# Item → (SNOMED CT code, display) of its subscore component; SpO2 by scale.
_COMPONENTS = {
    "respiration_rate": ("1104301000000104", "Respiration rate score"),
    "spo2": ("1104311000000102", "Oxygen saturation scale 1 score"),
    "spo2_scale_2": ("1104321000000108", "Oxygen saturation scale 2 score"),
    "air_or_oxygen": ("1104331000000105", "Air or oxygen score"),
    "systolic_bp": ("1104341000000101", "Systolic blood pressure score"),
    "pulse": ("1104351000000103", "Pulse rate score"),
    "consciousness": ("1104361000000100", "Consciousness score"),
    "temperature": ("1104371000000107", "Temperature score"),
}


def to_news2_observation(
    score: ScoredSet, *, patient: tuple[str, str], issued: dt.datetime
) -> dict[str, Any]:
    """Render a score; ``patient`` is the identifier (system, value) of its subject."""
    obs: dict[str, Any] = {
        "resourceType": "Observation",
        "id": score.id,
        "status": "final",
        "category": [
            _coding(
                "http://terminology.hl7.org/CodeSystem/observation-category", "survey", "Survey"
            )
        ],
        "code": _coding(SNOMED, NEWS2_CODE, "National Early Warning Score 2 total"),
        "subject": {"identifier": {"system": patient[0], "value": patient[1]}},
        "effectiveDateTime": _instant(score.effective),
        "issued": _instant(issued),
        "interpretation": [_coding(BAND_SYSTEM, score.band, score.band) | {"text": score.band}],
        "extension": [
            {"url": f"{EXTENSIONS}/news2-red-flag", "valueBoolean": score.red_flag},
            {"url": f"{EXTENSIONS}/news2-partial-sum", "valueInteger": score.partial_sum},
            {"url": f"{EXTENSIONS}/news2-alert-level", "valueCode": score.level},
        ],
        "component": [_component(score, item) for item in score.subscores],
        "derivedFrom": [
            {"reference": f"Observation/{reading.id}", "display": parameter}
            for parameter, reading in sorted(score.inputs.items())
        ],
    }
    if score.total is not None:
        obs["valueQuantity"] = {
            "value": score.total,
            "unit": "{score}",
            "system": UCUM,
            "code": "{score}",
        }
    else:
        missing = ", ".join(k for k, v in score.subscores.items() if v is None)
        obs["dataAbsentReason"] = {
            "coding": [{"system": _DATA_ABSENT, "code": "unknown"}],
            "text": f"incomplete set (missing: {missing}); partial sum {score.partial_sum}",
        }
    return obs


def _component(score: ScoredSet, item: str) -> dict[str, Any]:
    key = "spo2_scale_2" if item == "spo2" and score.spo2_scale == 2 else item
    code, display = _COMPONENTS[key]
    component: dict[str, Any] = {"code": _coding(SNOMED, code, display)}
    value = score.subscores[item]
    if value is None:
        component["dataAbsentReason"] = {"coding": [{"system": _DATA_ABSENT, "code": "unknown"}]}
    else:
        component["valueInteger"] = value
    return component


def _coding(system: str, code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code, "display": display}]}


def _instant(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
