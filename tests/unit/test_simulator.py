"""The simulator sends what a real hub would: Bundles the ingestion edge accepts in full."""

from __future__ import annotations

import datetime as dt
import random

from infra.simulator import make_fleet, reading_bundle
from ingestion.bundles import parse_bundle
from ingestion.identifiers import parse_person_number

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


def test_a_deteriorating_patient_drifts_toward_danger() -> None:
    """After a few hours of readings a deteriorating patient's pulse is far above baseline."""
    rng = random.Random(3)
    patient = next(p for p in make_fleet(6, rng) if p.deteriorating)
    for minute in range(0, 4 * 60, 2):
        reading_bundle(patient, rng, NOW + dt.timedelta(minutes=minute))
    assert patient.state["8867-4"] > 110
