"""The result of the vectorised scorer: one row per observation set."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from news2.chart import BANDS, CONSCIOUSNESS_LEVELS
from news2.encoding import python_value
from news2.exceptions import InvalidVitalSignError
from news2.scoring import score

__all__ = ["News2Batch"]

_BAND_NAMES: Final = np.array(BANDS)
_NUMERIC_INPUTS: Final = ("respiration_rate", "spo2", "systolic_bp", "pulse", "temperature")


@dataclass(frozen=True)
class News2Batch:
    """The NEWS2 of many observation sets, one row per set.

    Attributes:
        total: int8, 0–20, or −1 where the set is incomplete or invalid.
        band_code: uint8 index into ``news2.BANDS``.
        red_flag: Whether any present parameter scores 3 (False where invalid).
        partial_sum: int8 sum of the present subscores (0 where invalid).
        valid: False where an input is not a measurement; see ``reason``.
    """

    total: npt.NDArray[np.int8]
    band_code: npt.NDArray[np.uint8]
    red_flag: npt.NDArray[np.bool_]
    partial_sum: npt.NDArray[np.int8]
    valid: npt.NDArray[np.bool_]
    _inputs: dict[str, npt.NDArray[Any] | object] = field(repr=False, compare=False)

    def __len__(self) -> int:
        """Return the number of sets."""
        return len(self.total)

    @cached_property
    def band(self) -> npt.NDArray[np.str_]:
        """Band names as above, or ``"invalid"`` where an input is invalid."""
        return _BAND_NAMES[self.band_code]

    @cached_property
    def subscores(self) -> dict[str, npt.NDArray[np.int8]]:
        """Each item's subscore per row (keys as ``ITEMS``), −1 where missing or invalid."""
        from news2.vectorised import item_subscores  # vectorised builds batches: import late

        return item_subscores(self._inputs)

    def reason(self, row: int) -> str | None:
        """Return why a row is invalid (the scalar scorer's message), else ``None``."""
        if self.valid[row]:
            return None
        try:
            score(**self.row_inputs(row))
        except InvalidVitalSignError as error:
            return str(error)
        raise AssertionError(f"row {row}: score_many and score disagree")  # pragma: no cover

    @cached_property
    def reasons(self) -> npt.NDArray[np.str_]:
        """Reason per row, ``""`` where valid."""
        reasons = np.full(len(self), "", dtype=object)
        for row in np.flatnonzero(~self.valid):
            reasons[row] = self.reason(int(row))
        return reasons.astype(str)

    def row_inputs(self, row: int) -> dict[str, object]:
        """Return one row's inputs as the scalar ``score`` takes them."""
        values = {name: python_value(self._array(name), row) for name in _NUMERIC_INPUTS}
        values["on_oxygen"] = _oxygen_value(self._array("on_oxygen"), row)
        values["consciousness"] = _consciousness_value(self._array("consciousness"), row)
        scale = self._inputs["spo2_scale"]
        if isinstance(scale, np.ndarray):
            scale = python_value(scale, row, nan_is_missing=False)
        values["spo2_scale"] = scale
        return values

    def _array(self, name: str) -> npt.NDArray[Any]:
        """Return one input array."""
        array = self._inputs[name]
        assert isinstance(array, np.ndarray)
        return array


def _oxygen_value(array: npt.NDArray[Any], row: int) -> object:
    """Return on_oxygen as a scalar input: 0/1 numbers become booleans."""
    value = python_value(array, row)
    if array.dtype.kind in "fiu" and value in (0, 1):
        return bool(value)
    return value


def _consciousness_value(array: npt.NDArray[Any], row: int) -> object:
    """Return consciousness as a scalar input: codes become letters."""
    value = python_value(array, row)
    if array.dtype.kind in "iu" and 0 <= int(value) <= len(CONSCIOUSNESS_LEVELS):  # type: ignore[call-overload]
        return None if value == 0 else CONSCIOUSNESS_LEVELS[int(value) - 1]  # type: ignore[call-overload]
    return value
