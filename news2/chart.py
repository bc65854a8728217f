"""RCP NEWS2 Chart 1 and Chart 3 as data: subscore steps, plausibility limits and bands.

Values are compared in *chart units*: the integer a value rounds to at the chart's
resolution (whole numbers; tenths of a degree for temperature, so 35.1 °C is 351).
Both the scalar and the vectorised scorer are built from these tables.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from decimal import Decimal
from typing import Final, Literal

__all__ = [
    "BANDS",
    "CONSCIOUSNESS_LEVELS",
    "ITEMS",
    "LIMITS",
    "PULSE",
    "RESPIRATION_RATE",
    "SPO2_SCALE_1",
    "SPO2_SCALE_2_AIR",
    "SPO2_SCALE_2_OXYGEN",
    "SPO2_SCALE_2_OXYGEN_DEPENDENT",
    "SYSTOLIC_BP",
    "TEMPERATURE",
    "Band",
    "Limits",
    "Steps",
    "band_for",
]

Band = Literal["none", "low", "low-medium", "medium", "high", "incomplete", "invalid"]

#: The seven NEWS2 items, in chart order; keys of ``News2Result.subscores``.
ITEMS: Final = (
    "respiration_rate",
    "spo2",
    "air_or_oxygen",
    "systolic_bp",
    "pulse",
    "consciousness",
    "temperature",
)

#: Band names; a band's index here is its code in ``News2Batch.band_code``.
BANDS: Final[tuple[Band, ...]] = (
    "none",
    "low",
    "low-medium",
    "medium",
    "high",
    "incomplete",
    "invalid",
)

#: ACVPU letters; index + 1 is the letter's code in the vectorised path (0 = missing).
CONSCIOUSNESS_LEVELS: Final = ("A", "C", "V", "P", "U")


@dataclass(frozen=True, slots=True)
class Steps:
    """A subscore as a step function of a value in chart units.

    Attributes:
        edges: Ascending chart values; a value ``>= edges[i]`` lies past step ``i``.
        scores: Subscore of each interval, ``len(edges) + 1`` of them.
    """

    edges: tuple[int, ...]
    scores: tuple[int, ...]

    def score(self, units: int) -> int:
        """Return the subscore of a value in chart units."""
        return self.scores[bisect_right(self.edges, units)]


RESPIRATION_RATE: Final = Steps(edges=(9, 12, 21, 25), scores=(3, 1, 0, 2, 3))
SPO2_SCALE_1: Final = Steps(edges=(92, 94, 96), scores=(3, 2, 1, 0))
SPO2_SCALE_2_AIR: Final = Steps(edges=(84, 86, 88), scores=(3, 2, 1, 0))
SPO2_SCALE_2_OXYGEN: Final = Steps(edges=(84, 86, 88, 93, 95, 97), scores=(3, 2, 1, 0, 1, 2, 3))
SYSTOLIC_BP: Final = Steps(edges=(91, 101, 111, 220), scores=(3, 2, 1, 0, 3))
PULSE: Final = Steps(edges=(41, 51, 91, 111, 131), scores=(3, 1, 0, 1, 2, 3))
TEMPERATURE: Final = Steps(edges=(351, 361, 381, 391), scores=(3, 1, 0, 1, 2))

#: Lowest chart value on SpO2 scale 2 whose subscore depends on air or oxygen.
SPO2_SCALE_2_OXYGEN_DEPENDENT: Final = 93


@dataclass(frozen=True, slots=True)
class Limits:
    """The plausible range of a measurement, inclusive, in chart units.

    A value is a measurement when it is not negative and, rounded half-up to the
    chart's resolution, lies within ``low..high``.

    Attributes:
        unit: Unit shown in error messages.
        resolution: Chart units per unit (1, or 10 for temperature).
        low: Lowest plausible chart value.
        high: Highest plausible chart value.
    """

    unit: str
    resolution: int
    low: int
    high: int

    def step_edge(self, units: int) -> Decimal:
        """Return the exact value from which a value rounds to ``units`` or more."""
        return Decimal(2 * units - 1) / Decimal(2 * self.resolution)

    def describe(self) -> str:
        """Return the range for messages, e.g. ``"25–45 °C"``."""
        low = Decimal(self.low) / self.resolution
        high = Decimal(self.high) / self.resolution
        return f"{low.normalize():f}–{high.normalize():f} {self.unit}"


#: Plausibility limits. Pulse and systolic BP above 300 are taken as device or typing
#: errors; respiration 0 or above 80 and temperatures outside 25–45 °C (a Fahrenheit
#: value given as °C) likewise.
LIMITS: Final = {
    "respiration_rate": Limits(unit="/min", resolution=1, low=1, high=80),
    "spo2": Limits(unit="%", resolution=1, low=0, high=100),
    "systolic_bp": Limits(unit="mmHg", resolution=1, low=0, high=300),
    "pulse": Limits(unit="/min", resolution=1, low=0, high=300),
    "temperature": Limits(unit="°C", resolution=10, low=250, high=450),
}


def band_for(total: int, red_flag: bool) -> Band:
    """Return the band of a complete set (RCP Chart 3, precedence top to bottom)."""
    if total >= 7:
        return "high"
    if total >= 5:
        return "medium"
    if total >= 1:
        return "low-medium" if red_flag else "low"
    return "none"
