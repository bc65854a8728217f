"""Lookup tables for the vectorised scorer, derived from the scalar rules.

Each item contributes a 16-bit code: its subscore, plus ``MISSING`` when it could
not be scored, ``RED`` when it scores 3, ``INVALID`` when its input is not a
measurement. The seven codes are added; the sum indexes the output tables.
Thresholds are compared on the raw floats: a float rounds half-up to chart value
``n`` or more exactly when it is ``>=`` the float nearest to ``n - ½`` step (ties at
the chart's resolution are halves or twentieths; the comparison agrees with
rounding the float's shortest decimal form).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from typing import Final

import numpy as np
import numpy.typing as npt

from news2.chart import (
    BANDS,
    CONSCIOUSNESS_LEVELS,
    LIMITS,
    PULSE,
    RESPIRATION_RATE,
    SPO2_SCALE_1,
    SPO2_SCALE_2_OXYGEN,
    SYSTOLIC_BP,
    TEMPERATURE,
    Steps,
    band_for,
)
from news2.scoring import spo2_subscore

__all__ = [
    "AIR_OR_OXYGEN",
    "CONSCIOUSNESS",
    "INVALID",
    "MISSING",
    "NUMERIC",
    "OUTPUT",
    "RED",
    "SPO2",
    "Bins",
]

MISSING: Final = 32  # bits 5–7 count missing items (at most 7); a total fits in bits 0–4
RED: Final = 256  # bits 8–10 count subscores of 3 (at most 6)
INVALID: Final = 2048  # bits 11 and up count invalid inputs

Lut = npt.NDArray[np.uint16]


def _code(subscore: int | None) -> int:
    """Return the code of one item's subscore."""
    if subscore is None:
        return MISSING
    return subscore + RED * (subscore == 3)


class Bins:
    """The intervals of one numeric parameter, with a lookup table per context.

    ``count`` of a value is the number of float edges it reaches: 0 below the
    plausible range, ``len(edges)`` above it, and ``nan_slot`` for NaN.
    """

    def __init__(self, parameter: str, chart_edges: Iterable[int]) -> None:
        limits = LIMITS[parameter]
        units = [limits.low, *sorted(set(chart_edges)), limits.high + 1]
        self.edges = tuple(max(0.0, float(limits.step_edge(unit))) for unit in units)
        self.starts = tuple(units[:-1])  # a chart value inside each plausible interval
        self.nan_slot = len(self.edges) + 1

    def lut(self, subscore: Callable[[int], int | None]) -> Lut:
        """Return the code of each count, scoring each interval by its start."""
        inner = [_code(subscore(start)) for start in self.starts]
        return np.array([INVALID, *inner, INVALID, MISSING], dtype=np.uint16)


def _numeric(parameter: str, steps: Steps) -> tuple[Bins, Lut]:
    """Bins and table of a parameter scored by one step function."""
    bins = Bins(parameter, steps.edges)
    return bins, bins.lut(steps.score)


#: respiration_rate, systolic_bp, pulse, temperature: (bins, table by count).
NUMERIC: Final = {
    "respiration_rate": _numeric("respiration_rate", RESPIRATION_RATE),
    "systolic_bp": _numeric("systolic_bp", SYSTOLIC_BP),
    "pulse": _numeric("pulse", PULSE),
    "temperature": _numeric("temperature", TEMPERATURE),
}

_SPO2_BINS: Final = Bins("spo2", (*SPO2_SCALE_1.edges, *SPO2_SCALE_2_OXYGEN.edges))
# Context of an SpO2 value: 0 scale 1; 1, 2, 3 scale 2 on air, on oxygen, oxygen missing.
_SPO2_CONTEXTS: Final = ((1, False), (2, False), (2, True), (2, None))


def _spo2_lut(scale: int, on_oxygen: bool | None) -> Lut:
    """SpO2 table in one context."""
    return _SPO2_BINS.lut(partial(spo2_subscore, scale=scale, on_oxygen=on_oxygen))


#: SpO2: (bins, table indexed by ``context * (nan_slot + 1) + count``).
SPO2: Final = (_SPO2_BINS, np.concatenate([_spo2_lut(*context) for context in _SPO2_CONTEXTS]))

#: air_or_oxygen by oxygen code (air, oxygen, missing, invalid).
AIR_OR_OXYGEN: Final = np.array([0, 2, MISSING, INVALID], dtype=np.uint16)

#: consciousness by code (missing, A, C, V, P, U, invalid).
CONSCIOUSNESS: Final = np.array(
    [MISSING, *(_code(3 * (letter != "A")) for letter in CONSCIOUSNESS_LEVELS), INVALID],
    dtype=np.uint16,
)


def _outputs(code: int) -> tuple[int, int, bool, int]:
    """Return (total or -1, band code, red flag, partial sum) of a summed code."""
    if code >= INVALID:
        return -1, BANDS.index("invalid"), False, 0
    partial, missing, red = code % MISSING, code // MISSING % 8, code >= RED
    if missing:
        return -1, BANDS.index("incomplete"), red, partial
    return partial, BANDS.index(band_for(partial, red)), red, partial


def _output_tables() -> tuple[
    npt.NDArray[np.int8], npt.NDArray[np.uint8], npt.NDArray[np.bool_], npt.NDArray[np.int8]
]:
    """Tabulate ``_outputs`` for every code up to ``INVALID`` (all invalid codes)."""
    rows = [_outputs(code) for code in range(INVALID + 1)]
    total, band, red, partial = zip(*rows, strict=True)
    return (
        np.array(total, dtype=np.int8),
        np.array(band, dtype=np.uint8),
        np.array(red, dtype=np.bool_),
        np.array(partial, dtype=np.int8),
    )


#: (total, band code, red flag, partial sum) indexed by ``min(summed code, INVALID)``.
OUTPUT: Final = _output_tables()
