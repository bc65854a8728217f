"""Specification of the scalar scorer: RCP NEWS2 Chart 1 and 3 with this project's decisions."""

from __future__ import annotations

import dataclasses
import pickle
from decimal import Decimal
from typing import Any

import numpy as np
import pytest

from news2 import ITEMS, InvalidVitalSignError, News2Result, score
from tests.helpers import NORMAL_VITALS

NORMAL = NORMAL_VITALS


def scored(**changes: Any) -> News2Result:
    """Score a normal set (total 0) with some inputs changed."""
    return score(**{**NORMAL, **changes})


EDGES = [
    # parameter, value, subscore: every band edge on both sides, and values between steps
    *[("respiration_rate", v, s) for v, s in [(1, 3), (8, 3), (8.49, 3), (8.5, 1), (9, 1)]],
    *[("respiration_rate", v, s) for v, s in [(11, 1), (11.5, 0), (12, 0), (20, 0), (20.49, 0)]],
    *[("respiration_rate", v, s) for v, s in [(20.5, 2), (21, 2), (24, 2), (24.5, 3), (25, 3)]],
    *[("respiration_rate", v, s) for v, s in [(80, 3), (80.49, 3)]],
    *[("spo2", v, s) for v, s in [(0, 3), (91, 3), (91.49, 3), (91.5, 2), (92, 2), (93, 2)]],
    *[("spo2", v, s) for v, s in [(93.5, 1), (94, 1), (95, 1), (95.5, 0), (96, 0), (100, 0)]],
    *[("systolic_bp", v, s) for v, s in [(0, 3), (90, 3), (90.5, 2), (91, 2), (100, 2)]],
    *[("systolic_bp", v, s) for v, s in [(101, 1), (110, 1), (111, 0), (219, 0), (219.4, 0)]],
    *[("systolic_bp", v, s) for v, s in [(219.5, 3), (220, 3), (300, 3)]],
    *[("pulse", v, s) for v, s in [(0, 3), (40, 3), (40.5, 1), (41, 1), (50, 1), (51, 0)]],
    *[("pulse", v, s) for v, s in [(90, 0), (91, 1), (110, 1), (111, 2), (130, 2), (131, 3)]],
    *[("pulse", v, s) for v, s in [(300, 3)]],
    *[("temperature", v, s) for v, s in [(25, 3), (35.0, 3), (35.04, 3), (35.05, 1), (35.1, 1)]],
    *[("temperature", v, s) for v, s in [(36.0, 1), (36.05, 0), (36.1, 0), (38.0, 0)]],
    *[("temperature", v, s) for v, s in [(38.05, 1), (38.1, 1), (39.0, 1), (39.05, 2)]],
    *[("temperature", v, s) for v, s in [(39.1, 2), (45, 2), (45.049, 2), (24.95, 3)]],
    ("temperature", Decimal("35.05"), 1),
    ("temperature", Decimal("35.049999999999999999999999999999999"), 3),
    ("temperature", np.float64(35.05), 1),
    ("temperature", np.float32(35.05), 3),  # float32 35.05 is 35.0499992…
    ("pulse", np.int64(131), 3),
    ("pulse", Decimal("130.5"), 3),
    *[("consciousness", letter, 3) for letter in "CVPU"],
    ("consciousness", "A", 0),
]


@pytest.mark.parametrize(("parameter", "value", "subscore"), EDGES)
def test_each_band_edge_scores_as_chart_1(parameter: str, value: object, subscore: int) -> None:
    """Each parameter scores per Chart 1, values between steps rounded half-up."""
    result = scored(**{parameter: value})
    assert result.subscores[parameter] == subscore
    assert result.total == subscore


SCALE_2 = [
    # spo2, on_oxygen, spo2 subscore
    *[(v, False, s) for v, s in [(83, 3), (83.5, 2), (84, 2), (85, 2), (86, 1), (87, 1)]],
    *[(v, False, s) for v, s in [(88, 0), (92, 0), (93, 0), (97, 0), (100, 0)]],
    *[(v, True, s) for v, s in [(83, 3), (84, 2), (85, 2), (86, 1), (87, 1), (88, 0)]],
    *[(v, True, s) for v, s in [(92, 0), (92.49, 0), (92.5, 1), (93, 1), (94, 1), (95, 2)]],
    *[(v, True, s) for v, s in [(96, 2), (96.5, 3), (97, 3), (100, 3)]],
    *[(v, None, s) for v, s in [(83, 3), (84, 2), (87, 1), (88, 0), (92, 0), (92.49, 0)]],
]


@pytest.mark.parametrize(("spo2", "on_oxygen", "subscore"), SCALE_2)
def test_scale_2_scores_high_saturation_only_on_oxygen(
    spo2: float, on_oxygen: bool | None, subscore: int
) -> None:
    """On scale 2, 93 % and above scores 0 on air and 1–3 on oxygen."""
    result = scored(spo2=spo2, on_oxygen=on_oxygen, spo2_scale=2)
    assert result.subscores["spo2"] == subscore
    assert result.spo2_scale == 2


@pytest.mark.parametrize("spo2", [92.5, 93, 95, 97, 100])
def test_scale_2_saturation_from_93_without_oxygen_status_is_missing(spo2: float) -> None:
    """On scale 2 from 93 % the SpO2 subscore cannot be determined without air/oxygen."""
    result = scored(spo2=spo2, on_oxygen=None, spo2_scale=2)
    assert result.subscores["spo2"] is None
    assert result.missing == ("spo2", "air_or_oxygen")


@pytest.mark.parametrize(("on_oxygen", "subscore"), [(False, 0), (True, 2), (np.bool_(True), 2)])
def test_any_supplemental_oxygen_scores_2(on_oxygen: object, subscore: int) -> None:
    """Air scores 0 and oxygen 2, on either scale."""
    for scale in (1, 2):
        assert scored(on_oxygen=on_oxygen, spo2_scale=scale).subscores["air_or_oxygen"] == subscore


MAXIMUM: dict[str, Any] = {
    "respiration_rate": 30,
    "spo2": 80,
    "on_oxygen": True,
    "systolic_bp": 80,
    "pulse": 150,
    "consciousness": "U",
    "temperature": 34,
}

BANDS = [
    # changes, total, band, red flag
    ({}, 0, "none", False),
    ({"pulse": 95}, 1, "low", False),
    ({"respiration_rate": 21, "temperature": 38.5, "pulse": 95}, 4, "low", False),
    ({"consciousness": "C"}, 3, "low-medium", True),
    ({"consciousness": "V", "pulse": 95}, 4, "low-medium", True),
    ({"respiration_rate": 22, "on_oxygen": True, "pulse": 95}, 5, "medium", False),
    ({"consciousness": "C", "respiration_rate": 22}, 5, "medium", True),
    ({"consciousness": "P", "respiration_rate": 22, "pulse": 95}, 6, "medium", True),
    (
        {"respiration_rate": 22, "on_oxygen": True, "pulse": 115, "temperature": 38.5},
        7,
        "high",
        False,
    ),
    ({"consciousness": "U", "respiration_rate": 25, "pulse": 95}, 7, "high", True),
    (MAXIMUM, 20, "high", True),
]


@pytest.mark.parametrize(("changes", "total", "band", "red_flag"), BANDS)
def test_bands_follow_chart_3_with_precedence(
    changes: dict[str, Any], total: int, band: str, red_flag: bool
) -> None:
    """Bands by total, a red score lifting 1–4 to low-medium but never a total of 5 or more."""
    result = scored(**changes)
    assert (result.total, result.band, result.red_flag) == (total, band, red_flag)
    assert result.partial_sum == total
    assert result.missing == ()


@pytest.mark.parametrize(
    "item", ["respiration_rate", "spo2", "systolic_bp", "pulse", "temperature"]
)
def test_a_missing_parameter_makes_the_set_incomplete(item: str) -> None:
    """A missing value is never scored as 0: no total, band incomplete, a partial sum."""
    result = score(**{**MAXIMUM, item: None})
    assert (result.total, result.band, result.missing) == (None, "incomplete", (item,))
    assert result.subscores[item] is None
    assert result.partial_sum == 17
    assert result.red_flag


@pytest.mark.parametrize(
    ("changes", "missing", "partial_sum"),
    [
        ({"on_oxygen": None}, ("air_or_oxygen",), 18),
        ({"consciousness": None}, ("consciousness",), 17),
        ({"consciousness": ""}, ("consciousness",), 17),
        ({"on_oxygen": None, "spo2_scale": 2, "spo2": 95}, ("spo2", "air_or_oxygen"), 15),
        ({"on_oxygen": None, "spo2_scale": 2, "spo2": 90}, ("air_or_oxygen",), 15),
        (dict.fromkeys(NORMAL), ITEMS, 0),
    ],
)
def test_incomplete_sets_report_what_is_missing(
    changes: dict[str, Any], missing: tuple[str, ...], partial_sum: int
) -> None:
    """The partial sum adds the present subscores; missing lists the others in chart order."""
    result = score(**{**MAXIMUM, **changes})
    assert (result.total, result.band) == (None, "incomplete")
    assert (result.missing, result.partial_sum) == (missing, partial_sum)


def test_red_flag_of_an_incomplete_set_comes_from_present_parameters() -> None:
    """A present 3 raises the red flag even when the set is incomplete."""
    assert scored(consciousness="C", pulse=None).red_flag
    assert not scored(pulse=None).red_flag


INVALID = [
    # parameter, value, message
    ("respiration_rate", 0, "respiration_rate: 0 is outside 1–80 /min"),
    ("respiration_rate", 0.49, "respiration_rate: 0.49 is outside 1–80 /min"),
    ("respiration_rate", 80.5, "respiration_rate: 80.5 is outside 1–80 /min"),
    ("respiration_rate", -1, "respiration_rate: -1 is negative"),
    ("respiration_rate", True, "respiration_rate: True is not a number"),
    ("respiration_rate", "12", "respiration_rate: '12' is not a number"),
    ("respiration_rate", float("nan"), "respiration_rate: nan is not a finite number"),
    ("respiration_rate", float("inf"), "respiration_rate: inf is not a finite number"),
    ("respiration_rate", Decimal("NaN"), "respiration_rate: NaN is not a finite number"),
    ("spo2", 100.5, "spo2: 100.5 is outside 0–100 %"),
    ("spo2", -0.1, "spo2: -0.1 is negative"),
    ("systolic_bp", 301, "systolic_bp: 301 is outside 0–300 mmHg"),
    ("pulse", 300.5, "pulse: 300.5 is outside 0–300 /min"),
    ("pulse", Decimal("1E+1000"), "pulse: 1E+1000 is outside 0–300 /min"),
    ("temperature", 98.6, "temperature: 98.6 is outside 25–45 °C"),
    ("temperature", 24.94, "temperature: 24.94 is outside 25–45 °C"),
    ("temperature", 45.05, "temperature: 45.05 is outside 25–45 °C"),
    ("on_oxygen", 1, "on_oxygen: 1 is not true or false"),
    ("on_oxygen", "yes", "on_oxygen: 'yes' is not true or false"),
    ("consciousness", "X", "consciousness: 'X' is not one of A, C, V, P, U"),
    ("consciousness", "a", "consciousness: 'a' is not one of A, C, V, P, U"),
    ("consciousness", 1, "consciousness: 1 is not one of A, C, V, P, U"),
    ("spo2_scale", 3, "spo2_scale: 3 is not 1 or 2"),
    ("spo2_scale", True, "spo2_scale: True is not a number"),
    ("spo2_scale", None, "spo2_scale: None is not a number"),
]


@pytest.mark.parametrize(("parameter", "value", "message"), INVALID)
def test_input_that_is_not_a_measurement_is_rejected(
    parameter: str, value: object, message: str
) -> None:
    """Implausible or mistyped input raises, naming the parameter and the value."""
    with pytest.raises(InvalidVitalSignError) as raised:
        scored(**{parameter: value})
    assert str(raised.value) == message
    assert raised.value.parameter == parameter
    assert raised.value.value is value


def test_the_error_keeps_its_attributes_when_pickled() -> None:
    """The error survives pickling with its keyword attributes."""
    error = InvalidVitalSignError("pulse: -1 is negative", parameter="pulse", value=-1)
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes
    assert (str(copy), copy.parameter, copy.value) == (str(error), "pulse", -1)


def test_the_result_is_frozen() -> None:
    """Neither the result nor its subscores can be changed."""
    result = scored()
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.total = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        result.subscores["pulse"] = 3  # type: ignore[index]
