"""NEWS2 in a stream, without I/O: assembling sets across devices and times, freshness,
late data, scale 2 and care-plan oxygen, and which scores raise alerts."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import pytest

from streams.scoring import (
    PatientContext,
    Reading,
    ScoredSet,
    decide_alerts,
    score_sets,
    score_times,
    select_inputs,
)

T0 = dt.datetime(2026, 11, 26, 8, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)


def minutes(n: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=n)


def reading(parameter: str, value: float | bool | str, at: dt.datetime) -> Reading:
    return Reading(parameter, at, value, f"{parameter}@{at.isoformat()}")


NORMAL = {
    "respiration_rate": 16,
    "spo2": 97,
    "on_oxygen": False,
    "systolic_bp": 125,
    "pulse": 70,
    "consciousness": "A",
    "temperature": 36.8,
}


def series(values: Mapping[str, float | bool | str], at: dt.datetime) -> dict[str, list[Reading]]:
    return {p: [reading(p, v, at)] for p, v in values.items()}


def score_one(
    context: PatientContext, readings: dict[str, list[Reading]], at: dt.datetime
) -> ScoredSet:
    result = score_sets([(context, at, select_inputs(readings, at, context))])[0]
    assert result is not None
    return result


def test_a_set_is_assembled_from_readings_of_different_devices_and_times() -> None:
    """Each parameter contributes its latest reading at the score's time, wherever it came from."""
    ctx = PatientContext("p1")
    readings = series(NORMAL, minutes(0))
    readings["pulse"].append(reading("pulse", 120, minutes(10)))
    result = score_one(ctx, readings, minutes(20))
    assert (result.total, result.band) == (2, "low")
    assert result.inputs["pulse"].effective == minutes(10)


def test_a_stale_vital_sign_makes_the_set_incomplete() -> None:
    """A vital sign older than the freshness window is not reused: the set is incomplete."""
    ctx = PatientContext("p1", freshness=HOUR)
    readings = series(NORMAL, minutes(0))
    readings["pulse"] = [reading("pulse", 70, minutes(90))]
    result = score_one(ctx, readings, minutes(90))
    assert (result.total, result.band) == (None, "incomplete")
    assert result.subscores["respiration_rate"] is None
    assert result.subscores["consciousness"] == 0  # its own, longer window still holds


def test_incomplete_sets_keep_partial_sum_and_red_flag() -> None:
    """A missing parameter gives no total, but the partial sum and red flag still count."""
    ctx = PatientContext("p1")
    values = {k: v for k, v in NORMAL.items() if k != "temperature"} | {"respiration_rate": 26}
    result = score_one(ctx, series(values, minutes(0)), minutes(0))
    assert (result.total, result.band, result.partial_sum, result.red_flag) == (
        None,
        "incomplete",
        3,
        True,
    )


@pytest.mark.parametrize(
    ("long_term_oxygen", "band", "air_or_oxygen"),
    [(True, "low", 2), (False, "none", 0), (None, "incomplete", None)],
)
def test_care_plan_decides_oxygen_when_no_reading_says(
    long_term_oxygen: bool | None, band: str, air_or_oxygen: int | None
) -> None:
    """Without an oxygen reading the care plan decides; without a care plan the item is missing."""
    ctx = PatientContext("p1", long_term_oxygen=long_term_oxygen)
    values = {k: v for k, v in NORMAL.items() if k != "on_oxygen"}
    result = score_one(ctx, series(values, minutes(0)), minutes(0))
    assert (result.band, result.subscores["air_or_oxygen"]) == (band, air_or_oxygen)


def test_a_fresh_oxygen_reading_overrides_the_care_plan() -> None:
    """A nurse's room-air reading wins over a long-term oxygen care plan while it is fresh."""
    ctx = PatientContext("p1", long_term_oxygen=True)
    result = score_one(ctx, series(NORMAL, minutes(0)), minutes(5))
    assert result.subscores["air_or_oxygen"] == 0


@pytest.mark.parametrize(
    ("spo2", "on_oxygen", "spo2_subscore"),
    [(90, False, 0), (94, False, 0), (94, True, 1), (97, True, 3), (85, False, 2)],
)
def test_scale_2_patients_are_scored_on_scale_2(
    spo2: int, on_oxygen: bool, spo2_subscore: int
) -> None:
    """A patient with the scale-2 setting gets Chart 1's scale 2, on air and on oxygen."""
    ctx = PatientContext("p1", spo2_scale=2)
    values = NORMAL | {"spo2": spo2, "on_oxygen": on_oxygen}
    result = score_one(ctx, series(values, minutes(0)), minutes(0))
    assert result.subscores["spo2"] == spo2_subscore
    assert result.spo2_scale == 2


def test_late_reading_rescores_later_scores_within_its_window() -> None:
    """A late reading scores its own time and re-scores existing scores within its window only."""
    existing = [minutes(10), minutes(50), minutes(130)]
    times = score_times([(minutes(5), HOUR)], existing)
    assert times == [minutes(5), minutes(10), minutes(50)]


def test_new_reading_after_all_scores_scores_once() -> None:
    """A reading newer than every score makes exactly one new score."""
    assert score_times([(minutes(60), HOUR)], [minutes(0), minutes(30)]) == [minutes(60)]


def test_late_reading_changes_a_later_score() -> None:
    """A late high respiration rate changes the score after it that used an older value."""
    ctx = PatientContext("p1")
    readings = series(NORMAL, minutes(0))
    before = score_one(ctx, readings, minutes(30))
    readings["respiration_rate"].append(reading("respiration_rate", 26, minutes(20)))
    readings["respiration_rate"].sort(key=lambda r: r.effective)
    after = score_one(ctx, readings, minutes(30))
    assert (before.total, after.total) == (0, 3)
    assert after.band == "low-medium"
    assert after.red_flag


def test_score_ids_are_deterministic() -> None:
    """The same patient and instant always give the same score id (a replay upserts)."""
    ctx = PatientContext("p1")
    readings = series(NORMAL, minutes(0))
    assert score_one(ctx, readings, minutes(0)).id == score_one(ctx, readings, minutes(0)).id


def test_scoring_many_sets_takes_the_vectorised_path() -> None:
    """A thousand sets are scored in one call, each equal to scoring it alone."""
    ctx = PatientContext("p1")
    requests = []
    for i in range(1000):
        values = NORMAL | {"pulse": 40 + i % 100, "temperature": 35 + (i % 50) / 10}
        at = minutes(i)
        requests.append((ctx, at, select_inputs(series(values, at), at, ctx)))
    many = score_sets(requests)
    alone = [score_sets([r])[0] for r in requests[:50]]
    assert [s.total for s in many[:50] if s] == [s.total for s in alone if s]
    assert len([s for s in many if s]) == 1000


def _scored(level: str, at: dt.datetime, red: bool = False, band: str = "medium") -> ScoredSet:
    return ScoredSet("p1", at, 5, band, red, 5, level, 1, {}, {}, "org")


def test_band_rising_into_an_escalation_level_raises_one_alert() -> None:
    """Rising into urgent raises an alert; staying there raises nothing more (no storm)."""
    scores = [
        _scored("none", minutes(0), band="low"),
        _scored("urgent", minutes(1)),
        _scored("urgent", minutes(2)),
        _scored("urgent", minutes(3)),
    ]
    decisions = decide_alerts(scores, previous=None, active_level=None)
    assert [(d.action, d.score.effective) for d in decisions] == [("raise", minutes(1))]


def test_rising_further_upgrades_the_active_alert() -> None:
    """While an alert is active, rising to emergency upgrades it instead of raising another."""
    scores = [_scored("urgent", minutes(1)), _scored("emergency", minutes(2), band="high")]
    decisions = decide_alerts(scores, previous=None, active_level=None)
    assert [(d.action, d.level) for d in decisions] == [
        ("raise", "urgent"),
        ("upgrade", "emergency"),
    ]


def test_a_new_red_score_raises_an_alert() -> None:
    """A new red score raises an alert even when the level did not change."""
    previous = _scored("urgent", minutes(0))
    decisions = decide_alerts(
        [_scored("urgent", minutes(1), red=True)], previous=previous, active_level=None
    )
    assert [d.action for d in decisions] == ["raise"]


def test_a_patient_who_stays_high_after_resolution_gets_no_new_alert() -> None:
    """After a nurse resolved the alert, an unchanged high patient stays quiet."""
    previous = _scored("emergency", minutes(0), band="high")
    decisions = decide_alerts(
        [_scored("emergency", minutes(1), band="high")], previous=previous, active_level=None
    )
    assert decisions == []


def test_alert_ids_are_deterministic() -> None:
    """The same triggering score always gives the same alert id (a replay raises nothing new)."""
    first = decide_alerts([_scored("urgent", minutes(1))], previous=None, active_level=None)
    again = decide_alerts([_scored("urgent", minutes(1))], previous=None, active_level=None)
    assert first[0].alert_id == again[0].alert_id


def test_a_score_is_a_valid_fhir_news2_observation() -> None:
    """The score renders as an R4 Observation: SNOMED total, seven subscores, inputs, band."""
    from fhir.resources.R4B.observation import Observation

    from streams.news2_fhir import to_news2_observation

    ctx = PatientContext("p1", spo2_scale=2)
    scored = score_one(ctx, series(NORMAL | {"respiration_rate": 26}, minutes(0)), minutes(0))
    rendered = to_news2_observation(
        scored, patient=("urn:oid:2.16.578.1.12.4.1.4.1", "04677406998"), issued=minutes(1)
    )
    Observation.model_validate(rendered)
    assert rendered["code"]["coding"][0]["code"] == "1104051000000101"
    assert rendered["valueQuantity"]["value"] == 3
    assert rendered["interpretation"][0]["text"] == "low-medium"
    components = {
        c["code"]["coding"][0]["code"]: c.get("valueInteger") for c in rendered["component"]
    }
    assert components["1104321000000108"] == 0  # SpO2 scale 2 subscore
    assert components["1104301000000104"] == 3
    assert len(components) == 7
    assert len(rendered["derivedFrom"]) == 7


def test_an_incomplete_score_has_no_total_and_says_why() -> None:
    """Without a total the Observation carries a data-absent reason naming what is missing."""
    from streams.news2_fhir import to_news2_observation

    ctx = PatientContext("p1")
    values = {k: v for k, v in NORMAL.items() if k != "temperature"}
    scored = score_one(ctx, series(values, minutes(0)), minutes(0))
    rendered = to_news2_observation(scored, patient=("s", "v"), issued=minutes(0))
    assert "valueQuantity" not in rendered
    assert "temperature" in rendered["dataAbsentReason"]["text"]
