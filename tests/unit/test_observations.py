"""Parsing one FHIR Observation into a `Measurement`: what passes, and what each error says."""

from __future__ import annotations

from typing import Any

import pytest

from ingestion.exceptions import InvalidReadingError
from ingestion.observations import parse_observation
from tests.helpers import RECEIVED, SYNTHETIC_FNR, observation


def _parse(resource: Any, **kwargs: Any) -> Any:
    return parse_observation(resource, received=RECEIVED, **kwargs)


def test_heart_rate_becomes_a_measurement() -> None:
    """A valid heart-rate Observation keeps its code, value, unit and UTC time."""
    m = _parse(observation(value=72))
    assert (m.code, m.value, m.unit) == ("8867-4", 72.0, "/min")
    assert m.effective.isoformat() == "2026-11-26T07:00:00+00:00"
    assert m.patient_value == SYNTHETIC_FNR


def test_blood_pressure_panel_keeps_both_components() -> None:
    """A blood pressure panel yields systolic and diastolic components."""
    resource = observation(code="85354-9")
    del resource["valueQuantity"]
    resource["component"] = [
        {
            "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
            "valueQuantity": {
                "value": value,
                "system": "http://unitsofmeasure.org",
                "code": "mm[Hg]",
            },
        }
        for code, value in (("8480-6", 132), ("8462-4", 84))
    ]
    m = _parse(resource)
    assert [(c.code, c.value) for c in m.components] == [("8480-6", 132.0), ("8462-4", 84.0)]


def test_snomed_coding_maps_to_loinc_and_is_kept() -> None:
    """A SNOMED CT coded SpO2 is stored under LOINC, with the sender's coding kept."""
    resource = observation(code="2708-6", value=97, unit="%")
    resource["code"]["coding"] = [{"system": "http://snomed.info/sct", "code": "431314004"}]
    m = _parse(resource)
    assert m.code == "2708-6"
    assert [(c.system, c.code) for c in m.codings] == [("http://snomed.info/sct", "431314004")]


def test_effective_instant_is_accepted() -> None:
    """PMD's effectiveInstant is a measurement time too."""
    resource = observation()
    del resource["effectiveDateTime"]
    resource["effectiveInstant"] = "2026-11-26T07:00:00Z"
    assert _parse(resource).effective.hour == 7


def test_same_reading_gets_the_same_id() -> None:
    """Without a sender identity the id is a content hash: resending gives the same id."""
    assert _parse(observation()).id == _parse(observation()).id
    assert _parse(observation()).id != _parse(observation(value=73)).id


def test_sender_identity_decides_the_id() -> None:
    """A sender's identity of the reading makes the id, whatever the content."""
    a = _parse(observation(value=70), sender_identity="bundle|x|urn:uuid:1")
    b = _parse(observation(value=71), sender_identity="bundle|x|urn:uuid:1")
    assert a.id == b.id


@pytest.mark.parametrize(
    ("change", "expression", "message"),
    [
        (lambda r: r.pop("subject"), "Observation.subject.identifier.system", "subject.identifier"),
        (
            lambda r: r["subject"]["identifier"].update(value="12345678901"),
            "Observation.subject.identifier.value",
            "check digits",
        ),
        (
            lambda r: r["code"]["coding"][0].update(code="1234-5"),
            "Observation.code.coding",
            "supported",
        ),
        (
            lambda r: r.update(effectiveDateTime="2026-11-26"),
            "Observation.effectiveDateTime",
            "timezone",
        ),
        (
            lambda r: r.update(effectiveDateTime="2026-11-26T08:00:00"),
            "Observation.effectiveDateTime",
            "not a valid FHIR",
        ),
        (
            lambda r: r.update(effectiveDateTime="2026-11-26T10:00:00Z"),
            "Observation.effectiveDateTime",
            "future",
        ),
        (lambda r: r.pop("valueQuantity"), "Observation.valueQuantity.value", "valueQuantity"),
        (
            lambda r: r["valueQuantity"].update(code="/h"),
            "Observation.valueQuantity.code",
            "unit must be",
        ),
        (lambda r: r.update(status="entered-in-error"), "Observation.status", "status"),
        (lambda r: r.update(code={"coding": {"x": 1}}), "Observation.code.coding", "valid FHIR"),
    ],
)
def test_errors_point_at_the_offending_element(change: Any, expression: str, message: str) -> None:
    """Every rejection names the element (FHIRPath) and says what is wrong."""
    resource = observation()
    change(resource)
    with pytest.raises(InvalidReadingError, match=message) as info:
        _parse(resource)
    assert info.value.expression == expression


def test_error_expression_is_placed_under_the_path() -> None:
    """Inside a Bundle the expression starts at the entry."""
    resource = observation()
    resource["valueQuantity"]["code"] = "/h"
    with pytest.raises(InvalidReadingError) as info:
        _parse(resource, path="Bundle.entry[2].resource")
    assert info.value.expression == "Bundle.entry[2].resource.valueQuantity.code"


def test_not_an_observation_is_refused() -> None:
    """Another resource type is not supported here."""
    with pytest.raises(InvalidReadingError, match="Observation") as info:
        _parse({"resourceType": "Patient"})
    assert info.value.code == "not-supported"
