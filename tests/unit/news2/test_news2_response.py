"""Specification of the clinical response (RCP Chart 4) and organisation escalation policies."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from news2 import BANDS, EscalationPolicy, alert_level, clinical_response, policy_from_spec, score
from news2.response import RESPONSES
from tests.helpers import NORMAL_VITALS

NORMAL = NORMAL_VITALS


@pytest.mark.parametrize(
    ("band", "monitoring", "interval"),
    [
        ("none", "minimum 12-hourly", timedelta(hours=12)),
        ("low", "minimum 4–6-hourly", timedelta(hours=6)),
        ("low-medium", "minimum 1-hourly", timedelta(hours=1)),
        ("medium", "minimum 1-hourly", timedelta(hours=1)),
        ("high", "continuous monitoring of vital signs", None),
        ("incomplete", "complete the observation set now", None),
        ("invalid", "repeat the observation now", None),
    ],
)
def test_each_band_has_its_chart_4_monitoring(
    band: str, monitoring: str, interval: timedelta | None
) -> None:
    """Every band has a minimum monitoring frequency and a response text."""
    response = clinical_response(band)
    assert (response.band, response.monitoring, response.max_interval) == (
        band,
        monitoring,
        interval,
    )
    assert response.response


def test_every_band_has_a_response() -> None:
    """The response table covers exactly the bands."""
    assert tuple(RESPONSES) == BANDS


CASES = [
    # changes, RCP level, OUS level (total ≥ 5 or any single 3)
    ({}, "none", "none"),
    ({"pulse": 95}, "none", "none"),
    ({"consciousness": "C"}, "urgent", "urgent"),
    ({"respiration_rate": 22, "on_oxygen": True, "pulse": 95}, "urgent", "urgent"),
    ({"consciousness": "U", "respiration_rate": 25, "pulse": 95}, "emergency", "emergency"),
    ({"pulse": None}, "none", "none"),
    ({"pulse": None, "consciousness": "C"}, "urgent", "urgent"),
    (
        {"pulse": None, "respiration_rate": 22, "on_oxygen": True, "temperature": 38.5},
        "urgent",
        "urgent",
    ),
    (
        {"pulse": None, "respiration_rate": 30, "on_oxygen": True, "temperature": 39.5},
        "emergency",
        "emergency",
    ),
]


@pytest.mark.parametrize(("changes", "rcp", "ous"), CASES)
def test_policies_raise_the_expected_alert_level(
    changes: dict[str, Any], rcp: str, ous: str
) -> None:
    """Bands and, for incomplete sets, the partial sum and red flag raise alerts."""
    result = score(**{**NORMAL, **changes})
    assert alert_level(result) == rcp
    assert alert_level(result, EscalationPolicy.rcp()) == rcp
    assert alert_level(result, EscalationPolicy.total_or_single_three()) == ous


def test_the_norwegian_rule_can_leave_out_the_emergency_level() -> None:
    """Without an emergency threshold a total of 7 or more is only urgent."""
    result = score(**{**NORMAL, "consciousness": "U", "respiration_rate": 25, "pulse": 95})
    policy = EscalationPolicy.total_or_single_three(name="Ahus", total=5, emergency_total=None)
    assert (policy.name, alert_level(result, policy)) == ("Ahus", "urgent")


def test_an_organisation_can_map_bands_its_own_way() -> None:
    """A band-only policy raises exactly what it maps."""
    policy = EscalationPolicy(name="strict", band_levels={"low": "urgent", "incomplete": "urgent"})
    assert alert_level(score(**{**NORMAL, "pulse": 95}), policy) == "urgent"
    assert alert_level(score(**{**NORMAL, "pulse": None}), policy) == "urgent"
    assert alert_level(score(**NORMAL), policy) == "none"


@pytest.mark.parametrize(
    "settings",
    [
        {"band_levels": {"amber": "urgent"}},
        {"band_levels": {"low": "panic"}},
        {"total_levels": ((5, "panic"),)},
        {"red_flag_level": "panic"},
    ],
)
def test_unknown_bands_and_levels_are_refused(settings: dict[str, Any]) -> None:
    """A policy naming an unknown band or alert level is a configuration error."""
    with pytest.raises(ValueError, match="unknown band or alert level"):
        EscalationPolicy(name="bad", **settings)


def test_a_policy_is_frozen() -> None:
    """The band mapping of a policy cannot be changed after construction."""
    mapping = {"low": "urgent"}
    policy = EscalationPolicy(name="x", band_levels=mapping)  # type: ignore[arg-type]
    mapping["low"] = "none"
    assert policy.band_levels["low"] == "urgent"
    with pytest.raises(TypeError):
        policy.band_levels["low"] = "none"  # type: ignore[index]


@pytest.mark.parametrize(
    ("spec", "name"),
    [
        (None, "RCP"),
        ({"rule": "rcp"}, "RCP"),
        ({"rule": "total-or-single-three", "name": "OUS"}, "OUS"),
        (
            {"rule": "total-or-single-three", "total": 6, "emergency_total": None},
            "total-or-single-three",
        ),
        ({"band_levels": {"high": "emergency"}, "total_levels": [[5, "urgent"]]}, "explicit"),
    ],
)
def test_policies_are_built_from_stored_settings(spec: Any, name: str) -> None:
    """Each stored form gives the policy it names."""
    assert policy_from_spec(spec).name == name


def test_stored_total_or_single_three_acts_like_the_factory() -> None:
    """The stored Norwegian rule equals the factory's policy."""
    stored = policy_from_spec(
        {"rule": "total-or-single-three", "total": 6, "emergency_total": None}
    )
    assert stored == EscalationPolicy.total_or_single_three(
        name="total-or-single-three", total=6, emergency_total=None
    )


@pytest.mark.parametrize(
    "spec",
    [
        {"rule": "sometimes"},
        {"band_levels": {"purple": "urgent"}},
        {"rule": "explicit", "red_flag_level": "panic"},
    ],
)
def test_unknown_policies_are_refused(spec: dict[str, Any]) -> None:
    """An unknown rule, band or level is a ValueError, never a silent default."""
    with pytest.raises(ValueError, match="unknown"):
        policy_from_spec(spec)


@pytest.mark.parametrize("total", [0, 21, 1e400, float("nan"), 5.5, "5", True, 10**400])
def test_a_threshold_outside_the_news2_totals_is_refused(total: object) -> None:
    """Thresholds are whole numbers from 1 to 20; anything else is a ValueError, never a crash."""
    with pytest.raises(ValueError, match="whole number from 1 to 20"):
        policy_from_spec({"rule": "total-or-single-three", "total": total})
    with pytest.raises(ValueError, match="whole number"):
        policy_from_spec({"rule": "explicit", "total_levels": [[total, "urgent"]]})
