"""Array inputs of ``score_many`` turned into float64 values and small-int codes.

Codes used by the vectorised scorer:

- on_oxygen: 0 air, 1 oxygen, 2 missing, 3 invalid.
- consciousness: 0 missing, 1–5 for A C V P U (``CONSCIOUSNESS_LEVELS``), 6 invalid.
  An integer array is taken as these codes already (pre-encoded, the fastest input).
- spo2_scale: 0 scale 1, 1 scale 2, 2 invalid.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Final, TypeAlias

import numpy as np
import numpy.typing as npt

from news2.chart import CONSCIOUSNESS_LEVELS
from news2.exceptions import InvalidVitalSignError
from news2.validation import check_spo2_scale

__all__ = [
    "CONSCIOUSNESS_INVALID",
    "OXYGEN_INVALID",
    "OXYGEN_MISSING",
    "SCALE_INVALID",
    "Codes",
    "Floats",
    "as_array",
    "consciousness_codes",
    "encode_consciousness",
    "numbers_of",
    "oxygen_codes",
    "python_value",
    "scale_code",
    "scale_codes",
]

Floats: TypeAlias = npt.NDArray[np.float64]
Codes: TypeAlias = npt.NDArray[np.uint8]
Flags: TypeAlias = npt.NDArray[np.bool_]

OXYGEN_MISSING: Final = 2
OXYGEN_INVALID: Final = 3
CONSCIOUSNESS_INVALID: Final = 6
SCALE_INVALID: Final = 2

_LETTER_CODES: Final = {letter: code for code, letter in enumerate(CONSCIOUSNESS_LEVELS, 1)}
# Code point -> code for one-letter strings; anything from 127 up is invalid.
_ASCII: Final = np.full(128, CONSCIOUSNESS_INVALID, dtype=np.uint8)
_ASCII[0] = 0  # numpy stores "" as code point 0
for _letter, _code in _LETTER_CODES.items():
    _ASCII[ord(_letter)] = _code


def as_array(name: str, values: object) -> npt.NDArray[Any]:
    """Return array-like input as a one-dimensional array."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    return np.ascontiguousarray(array)  # strings are read through a uint32 view


def _is_nan(value: object) -> bool:
    """Tell whether a value is a float NaN (the array encoding of missing)."""
    return isinstance(value, float) and math.isnan(value)


def _map(array: npt.NDArray[Any], code: Callable[[object], int]) -> Codes:
    """Encode an object array element by element (the slow, general path)."""
    return np.fromiter((code(value) for value in array.tolist()), np.uint8, len(array))


def numbers_of(array: npt.NDArray[Any]) -> tuple[Floats, Flags | None]:
    """Return values as float64 (NaN missing) and a mask of non-numbers, if any."""
    if array.dtype.kind in "fiu":
        return array.astype(np.float64, copy=False), None
    if array.dtype.kind == "b":
        return np.full(len(array), np.nan), np.ones(len(array), dtype=np.bool_)
    floats = np.fromiter((_float_or_nan(value) for value in array.tolist()), np.float64)
    invalid = _map(array, _not_a_number).view(np.bool_)
    return floats, invalid


def _float_or_nan(value: object) -> float:
    """Return a number as float; NaN for anything else."""
    return math.nan if _not_a_number(value) or value is None else float(value)  # type: ignore[arg-type]


def _not_a_number(value: object) -> int:
    """Return 1 when a present value is not a finite-or-infinite number."""
    if value is None or _is_nan(value):
        return 0
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, Decimal)):
        return 1
    return int(math.isnan(float(value)))


def oxygen_codes(array: npt.NDArray[Any]) -> Codes:
    """Encode on_oxygen: booleans, 0/1 numbers with NaN missing, or objects."""
    kind = array.dtype.kind
    if kind == "b":
        return array.view(np.uint8)
    if kind in "fiu":
        # 0 -> 0 (air), 1 -> 1 (oxygen), NaN -> 2 (missing), anything else 3 (invalid)
        codes = np.full(len(array), OXYGEN_INVALID, dtype=np.uint8)
        codes -= (array == 0).view(np.uint8) * np.uint8(OXYGEN_INVALID)
        codes -= (array == 1).view(np.uint8) * np.uint8(OXYGEN_INVALID - 1)
        if kind == "f":
            codes -= np.isnan(array).view(np.uint8)
        return codes
    return _map(array, _oxygen_code)


def _oxygen_code(value: object) -> int:
    """Encode one on_oxygen object."""
    if value is None or _is_nan(value):
        return OXYGEN_MISSING
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    return OXYGEN_INVALID


def consciousness_codes(array: npt.NDArray[Any]) -> Codes:
    """Encode ACVPU: strings (``""`` missing), pre-encoded codes, or objects."""
    kind = array.dtype.kind
    if kind == "U":
        points = array.view(np.uint32).reshape(len(array), -1)
        codes = _ASCII[np.minimum(points[:, 0], 127)]
        if points.shape[1] > 1:
            codes[points[:, 1:].any(axis=1)] = CONSCIOUSNESS_INVALID
        return codes
    if kind in "iu":
        in_range = (array >= 0) & (array < CONSCIOUSNESS_INVALID)
        return np.where(in_range, array, CONSCIOUSNESS_INVALID).astype(np.uint8)
    return _map(array, _consciousness_code)


def _consciousness_code(value: object) -> int:
    """Encode one consciousness object."""
    if value is None or value == "" or _is_nan(value):
        return 0
    if isinstance(value, str):
        return _LETTER_CODES.get(value, CONSCIOUSNESS_INVALID)
    return CONSCIOUSNESS_INVALID


def encode_consciousness(values: object) -> Codes:
    """Pre-encode ACVPU letters once, for repeated fast ``score_many`` calls."""
    return consciousness_codes(as_array("consciousness", values))


def scale_codes(array: npt.NDArray[Any]) -> Codes:
    """Encode spo2_scale: 1 or 2, anything else invalid."""
    if array.dtype.kind in "fiu":
        # 1 -> 0, 2 -> 1, anything else 2 (invalid)
        codes = np.full(len(array), SCALE_INVALID, dtype=np.uint8)
        codes -= (array == 1).view(np.uint8) * np.uint8(SCALE_INVALID)
        codes -= (array == 2).view(np.uint8)
        return codes
    return _map(array, scale_code)


def scale_code(value: object) -> int:
    """Encode one spo2_scale object."""
    try:
        return check_spo2_scale(value) - 1
    except InvalidVitalSignError:
        return SCALE_INVALID


def python_value(array: npt.NDArray[Any], row: int, *, nan_is_missing: bool = True) -> object:
    """Return one element as the scalar API would take it (NaN becomes ``None``)."""
    value = array[row].item() if array.dtype.kind != "O" else array[row]
    if nan_is_missing and _is_nan(value):
        return None
    return value
