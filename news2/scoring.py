"""The scalar NEWS2 scorer: one observation set in, one frozen result out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from news2.chart import (
    PULSE,
    RESPIRATION_RATE,
    SPO2_SCALE_1,
    SPO2_SCALE_2_AIR,
    SPO2_SCALE_2_OXYGEN,
    SPO2_SCALE_2_OXYGEN_DEPENDENT,
    SYSTOLIC_BP,
    TEMPERATURE,
    Band,
    Steps,
    band_for,
)
from news2.validation import (
    check_consciousness,
    check_on_oxygen,
    check_spo2_scale,
    to_chart_units,
)

__all__ = ["News2Result", "score", "spo2_subscore"]


@dataclass(frozen=True, slots=True)
class News2Result:
    """The NEWS2 of one observation set.

    Attributes:
        total: 0–20, or ``None`` when the set is incomplete.
        band: ``"none"``, ``"low"``, ``"low-medium"``, ``"medium"``, ``"high"`` or
            ``"incomplete"``.
        red_flag: Whether any present parameter scores 3.
        subscores: Subscore per item (see ``ITEMS``); ``None`` where missing.
        partial_sum: Sum of the present subscores (the total when complete).
        missing: Items that could not be scored, in chart order.
        spo2_scale: The SpO2 scale used, 1 or 2.
    """

    total: int | None
    band: Band
    red_flag: bool
    subscores: Mapping[str, int | None]
    partial_sum: int
    missing: tuple[str, ...]
    spo2_scale: int


def _steps(steps: Steps, units: int | None) -> int | None:
    """Score a chart value, passing a missing value through."""
    return None if units is None else steps.score(units)


def spo2_subscore(units: int | None, *, scale: int, on_oxygen: bool | None) -> int | None:
    """Score SpO2 on scale 1 or 2.

    On scale 2 from 93 % up the subscore depends on air or oxygen; when that is
    missing the SpO2 subscore is missing too (it cannot be determined).
    """
    if units is None:
        return None
    if scale == 1:
        return SPO2_SCALE_1.score(units)
    if on_oxygen:
        return SPO2_SCALE_2_OXYGEN.score(units)
    if on_oxygen is None and units >= SPO2_SCALE_2_OXYGEN_DEPENDENT:
        return None
    return SPO2_SCALE_2_AIR.score(units)


def _subscores(
    values: Mapping[str, int | None], on_oxygen: bool | None, consciousness: str | None, scale: int
) -> dict[str, int | None]:
    """Score each of the seven items from checked inputs."""
    return {
        "respiration_rate": _steps(RESPIRATION_RATE, values["respiration_rate"]),
        "spo2": spo2_subscore(values["spo2"], scale=scale, on_oxygen=on_oxygen),
        "air_or_oxygen": None if on_oxygen is None else 2 * on_oxygen,
        "systolic_bp": _steps(SYSTOLIC_BP, values["systolic_bp"]),
        "pulse": _steps(PULSE, values["pulse"]),
        "consciousness": None if consciousness is None else 3 * (consciousness != "A"),
        "temperature": _steps(TEMPERATURE, values["temperature"]),
    }


def score(
    *,
    respiration_rate: object,
    spo2: object,
    on_oxygen: object,
    systolic_bp: object,
    pulse: object,
    consciousness: object,
    temperature: object,
    spo2_scale: object = 1,
) -> News2Result:
    """Score one observation set (RCP NEWS2 Charts 1 and 3).

    Args:
        respiration_rate: Breaths per minute.
        spo2: Oxygen saturation in %.
        on_oxygen: Whether any supplemental oxygen is given.
        systolic_bp: Systolic blood pressure in mmHg.
        pulse: Beats per minute.
        consciousness: ACVPU letter, ``"A"`` ``"C"`` ``"V"`` ``"P"`` or ``"U"``.
        temperature: Degrees Celsius.
        spo2_scale: 1, or 2 for a prescribed target of 88–92 %.

    ``None`` (and ``""`` for consciousness) means missing. Numbers are rounded
    half-up to the chart's resolution before scoring.

    Returns:
        The result; incomplete (no total) when any item is missing.

    Raises:
        InvalidVitalSignError: An input is not a measurement.
    """
    numbers = {"respiration_rate": respiration_rate, "spo2": spo2}
    numbers |= {"systolic_bp": systolic_bp, "pulse": pulse, "temperature": temperature}
    values = {name: to_chart_units(name, value) for name, value in numbers.items()}
    oxygen = check_on_oxygen(on_oxygen)
    letter = check_consciousness(consciousness)
    scale = check_spo2_scale(spo2_scale)
    subscores = _subscores(values, oxygen, letter, scale)
    return _result(subscores, scale)


def _result(subscores: dict[str, int | None], scale: int) -> News2Result:
    """Total and band the subscores."""
    present = [value for value in subscores.values() if value is not None]
    missing = tuple(name for name, value in subscores.items() if value is None)
    partial_sum = sum(present)
    red_flag = 3 in present
    total = None if missing else partial_sum
    return News2Result(
        total=total,
        band="incomplete" if total is None else band_for(total, red_flag),
        red_flag=red_flag,
        subscores=MappingProxyType(subscores),
        partial_sum=partial_sum,
        missing=missing,
        spo2_scale=scale,
    )
