"""The NEWS2 inputs table and the stage's per-patient state, without I/O: which stored column a
code is read from, what the state keeps and forgets, and which organisation a patient gets."""

from __future__ import annotations

import datetime as dt

import orjson
import pytest

from ingestion.measurement import from_record, to_json
from ingestion.news2_inputs import ACVPU_CODE, INPUTS, NEWS2_CODE, input_codes, parameter_of
from ingestion.observations import parse_observation
from ingestion.rendering import to_observation
from streams.news2_sets import PatientState, stored_reading
from streams.scoring import PARAMETERS, PatientContext, Reading, ScoredSet, score_sets
from streams.sinks import measurement_row
from tests.helpers import RECEIVED, observation

T0 = dt.datetime(2026, 11, 26, 8, 0, tzinfo=dt.UTC)


def minutes(n: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=n)


def _row_reading(code: str, **columns: object) -> Reading | None:
    values = {"value": None, "systolic": None, "acvpu": None, "on_oxygen": None} | columns
    return stored_reading("obs-1", code, T0, **values)  # type: ignore[arg-type]


def test_every_news2_parameter_has_an_input_and_no_code_is_listed_twice() -> None:
    """The one table covers the seven items, and each code appears once."""
    assert {i.parameter for i in INPUTS} == set(PARAMETERS)
    assert len(input_codes()) == len(set(input_codes())) == len(INPUTS)
    assert NEWS2_CODE not in input_codes()


@pytest.mark.parametrize(
    ("code", "columns", "expected"),
    [
        ("8867-4", {"value": 72}, ("pulse", 72.0)),
        ("85354-9", {"systolic": 125.0}, ("systolic_bp", 125.0)),
        (ACVPU_CODE, {"acvpu": "C"}, ("consciousness", "C")),
        ("722742002", {"on_oxygen": False}, ("on_oxygen", False)),
        ("3151-8", {"value": 2.0, "on_oxygen": True}, ("on_oxygen", True)),
    ],
)
def test_a_stored_row_is_read_from_the_column_its_input_names(
    code: str, columns: dict[str, object], expected: tuple[str, object]
) -> None:
    """Pulse from value, a panel from its systolic column, ACVPU from its letter, oxygen status."""
    reading = _row_reading(code, **columns)
    assert reading is not None
    assert (reading.parameter, reading.value) == expected


@pytest.mark.parametrize(
    ("code", "columns"),
    [("29463-7", {"value": 80}), ("85354-9", {"value": None}), (ACVPU_CODE, {"acvpu": "X"})],
)
def test_rows_that_are_no_usable_input_are_skipped(code: str, columns: dict[str, object]) -> None:
    """Body weight, a panel without systolic, an unknown ACVPU letter: no reading."""
    assert _row_reading(code, **columns) is None


def test_new_confusion_scores_three() -> None:
    """ACVPU "C" is known to the scorer: new confusion scores 3 like V, P or U."""
    reading = _row_reading(ACVPU_CODE, acvpu="C")
    assert reading is not None
    (scored,) = score_sets([(PatientContext("p1"), T0, {"consciousness": reading})])
    assert scored is not None
    assert (scored.subscores["consciousness"], scored.red_flag) == (3, True)


def test_the_stored_row_carries_the_edges_rendering_and_the_typed_inputs() -> None:
    """A record with the Observation rendered at the edge stores the same row as rendering it
    again, with the systolic value in its column and the source kept."""
    panel = observation(code="85354-9") | {
        "component": [
            {
                "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
                "valueQuantity": {"value": value, "unit": "mm[Hg]", "code": "mm[Hg]"},
            }
            for code, value in (("8480-6", 131), ("8462-4", 84))
        ]
    }
    panel.pop("valueQuantity")
    m = parse_observation(panel, received=RECEIVED)
    carried = measurement_row(*from_record(to_json(m, resource=orjson.dumps(to_observation(m)))))
    assert carried == measurement_row(m)
    assert (carried.systolic, carried.source, parameter_of(carried.code)) == (
        131.0,
        "fhir",
        "systolic_bp",
    )


def _score(at: dt.datetime, level: str = "none") -> ScoredSet:
    return ScoredSet("p1", at, 0, "none", False, 0, level, 1, {}, {}, None)


def test_the_state_keeps_each_series_in_time_order_and_skips_known_readings() -> None:
    """Readings arriving out of order are kept sorted; a replayed reading is not added twice."""
    state = PatientState(0, covered_from=minutes(-60))
    late, early = Reading("pulse", minutes(5), 70.0, "b"), Reading("pulse", minutes(1), 71.0, "a")
    state.add_readings([late, early, late])
    assert [r.id for r in state.readings["pulse"]] == ["a", "b"]


def test_forgetting_drops_old_readings_but_keeps_the_newest_two_scores() -> None:
    """What is older than the cut-off goes (and the coverage moves), except the last two scores."""
    state = PatientState(0, covered_from=minutes(-60))
    state.add_readings([Reading("pulse", minutes(m), 70.0, str(m)) for m in (0, 10, 20)])
    state.add_scores([_score(minutes(0)), _score(minutes(1))])
    state.forget_before(minutes(15))
    assert [r.id for r in state.readings["pulse"]] == ["20"]
    assert sorted(state.scores) == [minutes(0), minutes(1)]
    assert state.covered_from == minutes(15)
    state.add_readings([Reading("pulse", minutes(0), 70.0, "0")])  # known again after forgetting
    assert len(state.readings["pulse"]) == 2


def test_a_patient_no_clinician_placed_gets_the_organisation_that_measured_last() -> None:
    """Without an organisation in the settings, the newest reading's organisation stands in."""
    state = PatientState(0, covered_from=T0)
    state.saw_organisation(minutes(5), "org-new")
    state.saw_organisation(minutes(1), "org-old")
    assert state.context(PatientContext("p1")).organisation == "org-new"
    placed = PatientContext("p1", organisation="org-set")
    assert state.context(placed).organisation == "org-set"
