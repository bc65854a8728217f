"""What can be a human measurement: per-code ranges, checked after conversion to the canonical unit.

A value outside its range is a device or typing error, never a reading; it is refused with the
range in the message (and never the value itself: messages carry no measurement values).
"""

from __future__ import annotations

from ingestion.exceptions import InvalidReadingError

__all__ = ["RANGES", "check_plausible"]

# canonical code → (low, high, canonical unit), inclusive
RANGES: dict[str, tuple[float, float, str]] = {
    "8867-4": (20, 300, "/min"),  # heart rate
    "2708-6": (0, 100, "%"),  # SpO2
    "8310-5": (25, 45, "Cel"),  # body temperature
    "9279-1": (0, 120, "/min"),  # respiratory rate
    "29463-7": (0.2, 650, "kg"),  # body weight
    "15074-8": (0.5, 60, "mmol/L"),  # blood glucose
    "8480-6": (30, 300, "mm[Hg]"),  # systolic
    "8462-4": (10, 250, "mm[Hg]"),  # diastolic
    "3151-8": (0, 70, "L/min"),  # inhaled O2 flow
    "3150-0": (21, 100, "%"),  # inhaled O2 concentration
}


def check_plausible(code: str, value: float, *, expression: str) -> None:
    """Refuse a value outside what a human measurement of ``code`` can be.

    Raises:
        InvalidReadingError: with code ``value`` and the range in the message.
    """
    bounds = RANGES.get(code)
    if bounds is None:
        return
    low, high, unit = bounds
    if not low <= value <= high:
        raise InvalidReadingError(
            f"the value is outside what a human measurement of {code} can be "
            f"({low:g}–{high:g} {unit} after conversion); check the device",
            expression=expression,
            code="value",
        )
