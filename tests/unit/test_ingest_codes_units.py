"""Codes, units, plausibility and organisation numbers: the tables behind the edge's checks."""

from __future__ import annotations

import orjson
import pytest

from ingestion.codes import LOINC, MDC, SNOMED, lookup_code, valid_loinc
from ingestion.exceptions import InvalidReadingError
from ingestion.measurement import Measurement, from_json, to_json
from ingestion.observations import read_observation
from ingestion.performers import valid_org_number
from ingestion.plausibility import check_plausible
from ingestion.rendering import to_observation
from ingestion.units import convert
from tests.helpers import RECEIVED, merge_patch, observation


@pytest.mark.parametrize(
    ("code", "valid"),
    [
        ("8867-4", True), ("29463-7", True), ("8480-6", True), ("8462-4", True),
        ("3151-8", True), ("3150-0", True), ("59408-5", True), ("85354-9", True),
        ("29563-7", False), ("8867-5", False), ("8867", False), ("88a7-4", False), ("-4", False),
    ],
)  # fmt: skip
def test_loinc_check_digits(code: str, valid: bool) -> None:
    """LOINC's mod-10 check digit catches the typos published tables contain."""
    assert valid_loinc(code) is valid


@pytest.mark.parametrize(
    ("value", "unit", "canonical", "expected"),
    [
        (98.6, "[degF]", "Cel", 37.0), (32, "[degF]", "Cel", 0.0), (310.15, "K", "Cel", 37.0),
        (17.6, "kPa", "mm[Hg]", 132.01), (13.3322, "kPa", "mm[Hg]", 100.0),
        (154.3, "[lb_av]", "kg", 69.99), (70500, "g", "kg", 70.5), (0.97, "1", "%", 97.0),
        (1.2, "/s", "/min", 72.0), (72, "{beats}/min", "/min", 72.0), (500, "mL/min", "L/min", 0.5),
        (108, "mg/dL", "mmol/L", 5.99), (37.2, "Cel", "Cel", 37.2),
    ],
)  # fmt: skip
def test_units_convert_to_the_canonical_unit(
    value: float, unit: str, canonical: str, expected: float
) -> None:
    """Each accepted UCUM unit converts exactly (to 0.01) to its canonical unit."""
    assert convert(value, unit, canonical) == pytest.approx(expected, abs=0.01)


@pytest.mark.parametrize(
    ("unit", "canonical", "message"),
    [("kg", "Cel", "does not fit"), ("degF", "Cel", "not a UCUM unit"), ("mmHg", "mm[Hg]", "UCUM")],
)
def test_units_that_do_not_fit_are_refused(unit: str, canonical: str, message: str) -> None:
    """A unit of another dimension, or not UCUM, is refused with the units that would fit."""
    with pytest.raises(InvalidReadingError, match=message) as info:
        convert(1.0, unit, canonical, expression="X.code")
    assert info.value.expression == "X.code"


@pytest.mark.parametrize(
    ("code", "value", "ok"),
    [("2708-6", 100, True), ("2708-6", 100.1, False), ("8310-5", 24.9, False),
     ("8310-5", 45, True), ("8867-4", 19, False), ("8867-4", 300, True), ("9279-1", 0, True)],
)  # fmt: skip
def test_plausibility_ranges(code: str, value: float, ok: bool) -> None:
    """Values outside what a human measurement can be are refused, naming the range."""
    if ok:
        check_plausible(code, value, expression="x")
    else:
        with pytest.raises(InvalidReadingError, match="–"):
            check_plausible(code, value, expression="x")


@pytest.mark.parametrize(
    ("system", "code", "canonical"),
    [(MDC, "150456", "2708-6"), (MDC, "149530", "8867-4"), (MDC, "150364", "8310-5"),
     (MDC, "188736", "29463-7"), (MDC, "151562", "9279-1"), (MDC, "150020", "85354-9"),
     (SNOMED, "1104441000000107", "1104441000000107"), (LOINC, "3151-8", "3151-8")],
)  # fmt: skip
def test_codings_map_to_their_canonical_code(system: str, code: str, canonical: str) -> None:
    """IEEE 11073 MDC, SNOMED CT and LOINC synonyms map to one canonical code."""
    info = lookup_code(system, code)
    assert info is not None
    assert info.code == canonical


@pytest.mark.parametrize(
    ("number", "valid"),
    [("974633574", True), ("974633575", False), ("97463357", False), ("97463357x", False)],
)
def test_organisation_numbers(number: str, valid: bool) -> None:
    """Organisation numbers have 9 digits and a mod-11 check digit."""
    assert valid_org_number(number) is valid


def test_new_fields_travel_and_old_records_still_read() -> None:
    """A measurement with the new fields survives the wire; a record without them still reads."""
    resource = merge_patch(
        observation(),
        {
            "performer": [
                {"identifier": {"system": "urn:oid:2.16.578.1.12.4.1.4.101", "value": "974633574"}}
            ]
        },
    )
    m = read_observation(resource, received=RECEIVED, municipality="0301").measurement
    assert from_json(to_json(m)) == m
    old = orjson.loads(to_json(m))
    for key in ("value_code", "on_oxygen", "scorable", "late", "author", "municipality"):
        old.pop(key)
    legacy = from_json(orjson.dumps(old))
    assert isinstance(legacy, Measurement)
    assert (legacy.scorable, legacy.late, legacy.municipality) == (True, False, None)


def test_rendered_observation_keeps_performer_municipality_and_coded_values() -> None:
    """The normalised Observation carries the organisation, the kommunenummer and ACVPU."""
    resource = merge_patch(
        observation(code="1104441000000107"),
        {
            "code": {"coding": [{"system": SNOMED, "code": "1104441000000107"}]},
            "valueQuantity": None,
            "valueString": "V",
            "performer": [
                {"identifier": {"system": "urn:oid:2.16.578.1.12.4.1.4.101", "value": "974633574"}}
            ],
        },
    )
    m = read_observation(resource, received=RECEIVED, municipality="0301").measurement
    rendered = to_observation(m)
    assert rendered["code"]["coding"][0] == {
        "system": SNOMED,
        "code": "1104441000000107",
        "display": "ACVPU (Alert Confusion Voice Pain Unresponsive) scale score",
    }
    assert rendered["valueCodeableConcept"]["text"] == "V"
    assert rendered["performer"][0]["identifier"]["value"] == "974633574"
    assert rendered["meta"]["tag"][0]["code"] == "0301"
