"""Parsing one FHIR Observation into a `Measurement`: what passes, and what each error says.

Driven by tests/fixtures/corpus/observations.json: each case is a JSON merge patch on a minimal
valid heart-rate Observation, with what must come out (accepted) or the error (rejected).
"""

from __future__ import annotations

from typing import Any

import pytest

from ingestion.exceptions import InvalidReadingError
from ingestion.identifiers import IdentityMode
from ingestion.observations import UnknownCodes, parse_observation, read_observation
from tests.helpers import RECEIVED, SYNTHETIC_FNR, corpus, merge_patch, observation


def _read(resource: Any, **kwargs: Any) -> Any:
    return read_observation(resource, received=RECEIVED, **kwargs)


@pytest.mark.parametrize("case", corpus("observations", "accepted"))
def test_accepted_cases_become_canonical_measurements(case: dict[str, Any]) -> None:
    """Each accepted case yields the canonical code, value and flags, with warnings named."""
    reading = _read(merge_patch(observation(), case["patch"]))
    m, expect = reading.measurement, dict(case["expect"])
    warned = expect.pop("warnings", [])
    assert sorted(w.expression for w in reading.warnings) == sorted(warned)
    assert all(w.severity == "warning" for w in reading.warnings)
    for name, wanted in expect.items():
        got = getattr(m, name)
        if name == "components":
            got = [[c.code, c.value] for c in got]
            assert got == [[c, pytest.approx(v, abs=0.01)] for c, v in wanted]
        elif name == "codings":
            assert all((s, c) in {(x.system, x.code) for x in got} for s, c in wanted)
        elif name == "effective":
            assert got.isoformat() == wanted
        elif name == "author":
            assert list(got) == wanted
        elif isinstance(wanted, float):
            assert got == pytest.approx(wanted, abs=0.01)
        else:
            assert got == wanted, name


@pytest.mark.parametrize("case", corpus("observations", "rejected"))
def test_rejected_cases_name_the_offending_element(case: dict[str, Any]) -> None:
    """Each rejection has a FHIR issue code, a message saying what is wrong, and its FHIRPath."""
    with pytest.raises(InvalidReadingError) as info:
        _read(merge_patch(observation(), case["patch"]))
    assert case["message"] in info.value.message
    assert (info.value.code, info.value.expression) == (case["code"], case["expression"])
    assert SYNTHETIC_FNR not in info.value.message


def test_same_reading_gets_the_same_id() -> None:
    """Without a sender identity the id is a content hash: resending gives the same id."""
    assert _read(observation()).measurement.id == _read(observation()).measurement.id
    assert _read(observation()).measurement.id != _read(observation(value=73)).measurement.id


def test_sender_identity_decides_the_id() -> None:
    """A sender's identity of the reading makes the id, whatever the content."""
    a = _read(observation(value=70), sender_identity="bundle|x|urn:uuid:1")
    b = _read(observation(value=71), sender_identity="bundle|x|urn:uuid:1")
    assert a.measurement.id == b.measurement.id


def test_observation_identifier_decides_the_id() -> None:
    """Without a sender identity, the Observation's own identifier makes the id."""
    ident = [{"system": "urn:x", "value": "r-1"}]
    a = _read(observation(value=70, identifier=ident)).measurement
    b = _read(observation(value=71, identifier=ident)).measurement
    assert a.id == b.id


def test_error_expression_is_placed_under_the_path() -> None:
    """Inside a Bundle the expression starts at the entry."""
    resource = merge_patch(observation(), {"valueQuantity": {"code": "bpm"}})
    with pytest.raises(InvalidReadingError) as info:
        _read(resource, path="Bundle.entry[2].resource")
    assert info.value.expression == "Bundle.entry[2].resource.valueQuantity.code"


def test_production_refuses_synthetic_numbers() -> None:
    """A production deployment refuses synthetic person numbers, as NHN's JFT does."""
    with pytest.raises(InvalidReadingError, match="production") as info:
        _read(observation(), mode=IdentityMode.PRODUCTION)
    assert info.value.code == "business-rule"


def test_unknown_code_can_be_stored_unscored_by_setting() -> None:
    """With unknown codes set to store, the reading is kept as sent and flagged unscored."""
    resource = observation(code="1234-4", unit="{steps}", value=5000)
    reading = _read(resource, unknown_codes=UnknownCodes.STORE)
    m = reading.measurement
    assert (m.code, m.value, m.unit, m.scorable) == ("1234-4", 5000.0, "{steps}", False)
    assert [w.code for w in reading.warnings] == ["code-unknown"]


def test_unknown_code_is_refused_with_the_supported_list_by_default() -> None:
    """By default an unknown code is refused, listing what is supported."""
    with pytest.raises(InvalidReadingError) as info:
        parse_observation(observation(code="1234-4"), received=RECEIVED)
    assert "http://loinc.org|8867-4" in info.value.message
