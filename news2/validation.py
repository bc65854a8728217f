"""Checks that turn one caller's input into chart values, or raise.

Numbers may be ``int``, ``float``, ``Decimal`` or numpy numbers. A float is taken as
its shortest decimal form (``35.05`` is 35.05, not 35.04999…); a ``Decimal`` is exact.
"""

from __future__ import annotations

import math
import numbers
from decimal import ROUND_HALF_UP, Decimal
from typing import Final

import numpy as np

from news2.chart import CONSCIOUSNESS_LEVELS, LIMITS
from news2.exceptions import InvalidVitalSignError

__all__ = ["check_consciousness", "check_on_oxygen", "check_spo2_scale", "to_chart_units"]

_ONE: Final = Decimal(1)
_LETTERS: Final = frozenset(CONSCIOUSNESS_LEVELS)


def show(value: object) -> str:
    """Return a value as it should appear in an error message."""
    if isinstance(value, float):
        return float.__repr__(value)
    if isinstance(value, (int, Decimal)) and not isinstance(value, bool):
        return str(value)
    return repr(value)


def _invalid(parameter: str, value: object, problem: str) -> InvalidVitalSignError:
    """Build the error for ``parameter`` whose ``value`` has ``problem``."""
    message = f"{parameter}: {show(value)} {problem}"
    return InvalidVitalSignError(message, parameter=parameter, value=value)


def _is_bool(value: object) -> bool:
    """Tell whether a value is a Python or numpy boolean."""
    return isinstance(value, (bool, np.bool_))


def _exact(parameter: str, value: object) -> Decimal:
    """Return a number as an exact, finite ``Decimal``, or raise."""
    if _is_bool(value) or not isinstance(value, (numbers.Real, Decimal)):
        raise _invalid(parameter, value, "is not a number")
    if isinstance(value, Decimal):
        exact = value
    elif isinstance(value, numbers.Integral):
        exact = Decimal(int(value))
    else:
        number = float(value)
        if not math.isfinite(number):
            raise _invalid(parameter, value, "is not a finite number")
        exact = Decimal(float.__repr__(number))
    if not exact.is_finite():
        raise _invalid(parameter, value, "is not a finite number")
    return exact


def to_chart_units(parameter: str, value: object) -> int | None:
    """Round a measurement half-up to the chart's resolution.

    Args:
        parameter: A key of ``LIMITS``.
        value: The measurement, or ``None`` when missing.

    Returns:
        The value in chart units (tenths for temperature), or ``None``.

    Raises:
        InvalidVitalSignError: The value is not a number, negative or implausible.
    """
    if value is None:
        return None
    limits = LIMITS[parameter]
    exact = _exact(parameter, value)
    if exact < 0:
        raise _invalid(parameter, value, "is negative")
    if not limits.step_edge(limits.low) <= exact < limits.step_edge(limits.high + 1):
        raise _invalid(parameter, value, f"is outside {limits.describe()}")
    step = _ONE / limits.resolution
    return int(exact.quantize(step, rounding=ROUND_HALF_UP) * limits.resolution)


def check_on_oxygen(value: object) -> bool | None:
    """Return whether the patient is on oxygen, ``None`` when missing, or raise."""
    if value is None:
        return None
    if not _is_bool(value):
        raise _invalid("on_oxygen", value, "is not true or false")
    return bool(value)


def check_consciousness(value: object) -> str | None:
    """Return an ACVPU letter, ``None`` when missing (``None`` or ``""``), or raise."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or value not in _LETTERS:
        raise _invalid("consciousness", value, "is not one of A, C, V, P, U")
    return str(value)


def check_spo2_scale(value: object) -> int:
    """Return the SpO2 scale (1 or 2), or raise."""
    exact = _exact("spo2_scale", value)
    if exact not in (1, 2):
        raise _invalid("spo2_scale", value, "is not 1 or 2")
    return int(exact)
