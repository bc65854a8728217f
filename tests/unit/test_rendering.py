"""Measurements travel as compact JSON and come out as normalised FHIR R4 Observations."""

from __future__ import annotations

from fhir.resources.R4B.observation import Observation

from api.routes.params import SUMMARY_ELEMENTS
from ingestion.measurement import from_json, to_json
from ingestion.observations import parse_observation
from ingestion.rendering import to_observation
from tests.helpers import RECEIVED, observation


def test_measurement_survives_the_wire() -> None:
    """to_json/from_json is lossless."""
    m = parse_observation(observation(), received=RECEIVED, sender_identity="s|1")
    assert from_json(to_json(m)) == m


def test_rendered_observation_is_valid_r4_with_a_deterministic_id() -> None:
    """The normalised Observation validates against R4 and carries the measurement's id."""
    m = parse_observation(observation(value=64), received=RECEIVED)
    rendered = to_observation(m)
    Observation.model_validate(rendered)
    assert rendered["id"] == m.id
    assert rendered["valueQuantity"] == {
        "value": 64.0,
        "unit": "/min",
        "system": "http://unitsofmeasure.org",
        "code": "/min",
    }
    assert rendered["effectiveDateTime"] == "2026-11-26T07:00:00Z"
    assert rendered["category"][0]["coding"][0]["code"] == "vital-signs"


def test_canonical_coding_first_and_senders_coding_kept() -> None:
    """LOINC comes first; a SNOMED coding the sender used follows it."""
    resource = observation(code="2708-6", value=97, unit="%")
    resource["code"]["coding"].append({"system": "http://snomed.info/sct", "code": "431314004"})
    codings = to_observation(parse_observation(resource, received=RECEIVED))["code"]["coding"]
    assert [(c["system"], c["code"]) for c in codings] == [
        ("http://loinc.org", "2708-6"),
        ("http://snomed.info/sct", "431314004"),
    ]


def test_a_senders_identifier_without_a_system_is_kept_without_an_empty_one() -> None:
    """FHIR strings are never empty: an identifier sent with a value only comes out so."""
    resource = observation() | {"identifier": [{"value": "reading-17"}]}
    rendered = to_observation(parse_observation(resource, received=RECEIVED))
    Observation.model_validate(rendered)
    assert rendered["identifier"] == [{"value": "reading-17"}]


def test_the_summary_elements_are_those_the_specification_marks() -> None:
    """_summary=true keeps exactly the elements R4 marks Σ (isSummary) on an Observation."""
    marked = {
        name
        for name, field in Observation.model_fields.items()
        if isinstance(field.json_schema_extra, dict)
        and field.json_schema_extra.get("summary_element_property")
    }
    assert marked == SUMMARY_ELEMENTS
