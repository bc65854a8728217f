"""The simulator sends what a real hub would: Bundles the ingestion edge accepts in full."""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path
from typing import Any

import pytest

from infra.simulator import load_fleet, make_fleet, reading_bundle
from ingestion.bundles import parse_bundle
from ingestion.identifiers import parse_person_number
from ingestion.news2_inputs import ACVPU_CODE
from news2 import News2Result, score

NOW = dt.datetime(2026, 11, 26, 8, 0, tzinfo=dt.UTC)


def test_fleet_has_distinct_synthetic_identities_and_some_deteriorate() -> None:
    """Every identity is a valid synthetic number; one in six patients deteriorates."""
    fleet = make_fleet(30, random.Random(1))
    assert len({p.fnr for p in fleet}) == 30
    assert all(parse_person_number(p.fnr).synthetic for p in fleet)
    assert sum(p.deteriorating for p in fleet) == 5


def test_every_simulated_reading_is_accepted() -> None:
    """A day of simulated Bundles passes validation entry by entry, ACVPU included."""
    rng = random.Random(2)
    fleet = make_fleet(6, rng)
    for minute in range(0, 24 * 60, 30):
        for patient in fleet:
            when = NOW + dt.timedelta(minutes=minute)
            parsed = parse_bundle(reading_bundle(patient, rng, when), received=when)
            assert [e.issues for e in parsed.entries if e.measurement is None] == []
            assert len(parsed.measurements) == 6


def _news2(bundle: dict[str, Any]) -> News2Result:
    """The NEWS2 of one simulated Bundle, as the worker scores it (room air, scale 1)."""
    values: dict[str, Any] = {}
    for entry in bundle["entry"]:
        resource = entry["resource"]
        code = resource["code"]["coding"][0]["code"]
        if code == "85354-9":
            values["8480-6"] = resource["component"][0]["valueQuantity"]["value"]
        else:
            values[code] = resource.get("valueString") or resource["valueQuantity"]["value"]
    return score(
        respiration_rate=values["9279-1"],
        spo2=values["2708-6"],
        on_oxygen=False,
        systolic_bp=values["8480-6"],
        pulse=values["8867-4"],
        consciousness=values[ACVPU_CODE],
        temperature=values["8310-5"],
    )


def _alerting(result: News2Result) -> bool:
    """Total 5 or more, or a red 3: what raises an alert under the RCP policy."""
    return (result.total or 0) >= 5 or result.red_flag


@pytest.mark.parametrize("n", [1, 6, 20, 60])
@pytest.mark.parametrize("seed", range(5))
def test_about_one_patient_in_six_reaches_an_alert_within_ten_minutes(n: int, seed: int) -> None:
    """Sending every 30 s (as `malestrom up --simulate N` does), the deteriorating patients, one
    in six, reach NEWS2 5 or a red 3 within 10 minutes of the start; nobody else ever does."""
    rng = random.Random(seed)
    fleet = make_fleet(n, rng)
    gap = 30.0 / n
    first_alert: dict[str, float] = {}
    for t in range(0, 600, 30):
        for k, patient in enumerate(fleet):
            elapsed = t + k * gap
            when = NOW + dt.timedelta(seconds=elapsed)
            result = _news2(reading_bundle(patient, rng, when, elapsed_s=elapsed))
            if _alerting(result):
                first_alert.setdefault(patient.fnr, elapsed)
    deteriorating = {p.fnr for p in fleet if p.deteriorating}
    assert len(deteriorating) == max(1, round(n / 6))
    assert set(first_alert) == deteriorating
    for patient in fleet:
        if patient.plan is not None:
            assert patient.plan.onset_s < first_alert[patient.fnr] < 600


def test_a_stable_patient_stays_unalarming_for_a_day() -> None:
    """A patient without a plan never reaches an alerting score in a day of readings."""
    rng = random.Random(4)
    patient = next(p for p in make_fleet(6, rng) if not p.deteriorating)
    for minute in range(0, 24 * 60, 5):
        when = NOW + dt.timedelta(minutes=minute)
        assert not _alerting(_news2(reading_bundle(patient, rng, when, elapsed_s=minute * 60)))


def test_a_second_start_reuses_the_fleet_and_adds_only_what_is_asked(tmp_path: Path) -> None:
    """The fleet file keeps the patients: the same N gives the same ones, a larger N adds only
    the difference, a smaller N takes the first; every identity is synthetic."""
    path = tmp_path / "simulator" / "fleet.json"
    first = load_fleet(path, 20, random.Random(1))
    again = load_fleet(path, 20, random.Random(2))
    assert [p.fnr for p in again] == [p.fnr for p in first]
    assert [p.deteriorating for p in again] == [p.deteriorating for p in first]
    more = load_fleet(path, 25, random.Random(3))
    assert [p.fnr for p in more[:20]] == [p.fnr for p in first]
    assert len({p.fnr for p in more}) == 25
    fewer = load_fleet(path, 10, random.Random(4))
    assert [p.fnr for p in fewer] == [p.fnr for p in first[:10]]
    stored = json.loads(path.read_text())["patients"]
    assert [p["fnr"] for p in stored] == [p.fnr for p in more]
    assert all(parse_person_number(p["fnr"]).synthetic for p in stored)


@pytest.mark.parametrize("n", [1, 3, 5])
def test_a_smaller_fleet_after_a_larger_one_still_has_a_deteriorating_patient(
    tmp_path: Path, n: int
) -> None:
    """One in six, at least one, of the patients simulated: the last of fewer than six
    deteriorates even when the stored fleet is larger."""
    path = tmp_path / "fleet.json"
    load_fleet(path, 12, random.Random(1))
    fewer = load_fleet(path, n, random.Random(2))
    assert [p.deteriorating for p in fewer] == [False] * (n - 1) + [True]
    assert len(json.loads(path.read_text())["patients"]) == 12


@pytest.mark.parametrize(
    "text",
    ["", '{"patients": [{"fnr": "1', "[]", '{"patients": [1]}', '{"patients": [{"fnr": 7}]}'],
)
def test_an_unreadable_fleet_file_is_made_again(
    tmp_path: Path, text: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A truncated or foreign fleet file is replaced by a new fleet (and a log line says so),
    instead of stopping the simulator at every start."""
    path = tmp_path / "fleet.json"
    path.write_text(text)
    fleet = load_fleet(path, 7, random.Random(1))
    assert len({p.fnr for p in fleet}) == 7
    assert [p["fnr"] for p in json.loads(path.read_text())["patients"]] == [p.fnr for p in fleet]
    assert "making a new fleet" in caplog.text
    assert list(tmp_path.iterdir()) == [path]
