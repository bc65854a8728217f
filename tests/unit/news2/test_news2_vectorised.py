"""Specification of ``score_many``'s input encodings and its batch result."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import numpy as np
import pytest

from news2 import encode_consciousness, score_many

N = 3


def columns(**changes: Any) -> dict[str, Any]:
    """Three normal sets (total 0) as arrays, with some columns changed."""
    normal: dict[str, Any] = {
        "respiration_rate": np.full(N, 16.0),
        "spo2": np.full(N, 97.0),
        "on_oxygen": np.zeros(N, dtype=bool),
        "systolic_bp": np.full(N, 120.0),
        "pulse": np.full(N, 70.0),
        "consciousness": np.full(N, "A"),
        "temperature": np.full(N, 37.0),
    }
    return {**normal, **changes}


def bands(**changes: Any) -> list[str]:
    """Band of each of the three sets."""
    return [str(band) for band in score_many(**columns(**changes)).band]


@pytest.mark.parametrize(
    ("consciousness", "expected"),
    [
        (np.array(["A", "C", ""]), ["none", "low-medium", "incomplete"]),
        (np.array(["A", "CV", "é"]), ["none", "invalid", "invalid"]),
        (np.array(["A", None, np.nan], dtype=object), ["none", "incomplete", "incomplete"]),
        (np.array(["U", b"A", 1], dtype=object), ["low-medium", "invalid", "invalid"]),
        (np.array([1, 0, 5], dtype=np.uint8), ["none", "incomplete", "low-medium"]),
        (np.array([2, 6, -1], dtype=np.int8), ["low-medium", "invalid", "invalid"]),
        (np.array([True, False, True]), ["invalid", "invalid", "invalid"]),
        (encode_consciousness(["A", "P", ""]), ["none", "low-medium", "incomplete"]),
    ],
)
def test_consciousness_as_strings_objects_or_codes(consciousness: Any, expected: list[str]) -> None:
    """ACVPU may come as strings, objects or pre-encoded codes (0 missing, 1–5 A–U)."""
    assert bands(consciousness=consciousness) == expected


@pytest.mark.parametrize(
    ("on_oxygen", "expected"),
    [
        (np.array([False, True, False]), ["none", "low", "none"]),
        (np.array([0.0, 1.0, np.nan]), ["none", "low", "incomplete"]),
        (np.array([0, 1, 2]), ["none", "low", "invalid"]),
        (np.array([0.5, -1.0, 1.0]), ["invalid", "invalid", "low"]),
        (np.array([True, None, np.nan], dtype=object), ["low", "incomplete", "incomplete"]),
        (np.array([np.bool_(False), 1, "yes"], dtype=object), ["none", "invalid", "invalid"]),
    ],
)
def test_on_oxygen_as_booleans_numbers_or_objects(on_oxygen: Any, expected: list[str]) -> None:
    """on_oxygen may be booleans, 0/1 with NaN missing, or objects with None missing."""
    assert bands(on_oxygen=on_oxygen) == expected


@pytest.mark.parametrize(
    ("pulse", "expected"),
    [
        (np.array([70, 95, 131]), ["none", "low", "low-medium"]),
        (np.array([70.0, np.nan, 301.0]), ["none", "incomplete", "invalid"]),
        (np.array([Decimal("95"), None, "70"], dtype=object), ["low", "incomplete", "invalid"]),
        (np.array([True, 70, Decimal("NaN")], dtype=object), ["invalid", "none", "invalid"]),
        (np.array([np.inf, -np.inf, -1.0]), ["invalid", "invalid", "invalid"]),
        (np.array([True, False, True]), ["invalid", "invalid", "invalid"]),
        (np.array(["70", "95", ""]), ["invalid", "invalid", "invalid"]),
    ],
)
def test_numbers_as_floats_ints_or_objects(pulse: Any, expected: list[str]) -> None:
    """Numbers are float64 (NaN missing); objects that are not numbers are invalid."""
    assert bands(pulse=pulse) == expected


@pytest.mark.parametrize(
    ("spo2_scale", "expected"),
    [
        (2, ["low", "low", "low"]),
        (np.int64(1), ["medium", "medium", "medium"]),
        (np.array([1, 2, 3]), ["medium", "low", "invalid"]),
        (np.array([1.0, 2.0, np.nan]), ["medium", "low", "invalid"]),
        (np.array([1, True, "2"], dtype=object), ["medium", "invalid", "invalid"]),
        (True, ["invalid", "invalid", "invalid"]),
    ],
)
def test_spo2_scale_for_all_rows_or_per_row(spo2_scale: Any, expected: list[str]) -> None:
    """The scale is one value for the batch or one per row; anything but 1 or 2 is invalid."""
    on_oxygen = np.array([True, True, True])  # SpO2 91 % on oxygen: 3 + 2 on scale 1, 0 + 2 on 2
    assert bands(spo2_scale=spo2_scale, on_oxygen=on_oxygen, spo2=np.full(N, 91.0)) == expected


def test_the_batch_reports_totals_flags_and_reasons() -> None:
    """Totals are −1 where incomplete or invalid; each invalid row has the scalar reason."""
    batch = score_many(
        **columns(
            temperature=np.array([38.5, np.nan, 98.6]), consciousness=np.array(["V", "A", "A"])
        )
    )
    assert len(batch) == N
    assert batch.total.tolist() == [4, -1, -1]
    assert batch.band.tolist() == ["low-medium", "incomplete", "invalid"]
    assert batch.red_flag.tolist() == [True, False, False]
    assert batch.partial_sum.tolist() == [4, 0, 0]
    assert batch.valid.tolist() == [True, True, False]
    assert batch.reasons.tolist() == ["", "", "temperature: 98.6 is outside 25–45 °C"]
    assert (batch.reason(0), batch.reason(2)) == (None, "temperature: 98.6 is outside 25–45 °C")


def test_row_inputs_decode_codes_for_the_scalar_scorer() -> None:
    """A row's inputs come back as the scalar API takes them."""
    batch = score_many(
        **columns(consciousness=np.array([3, 0, 9]), on_oxygen=np.array([1.0, np.nan, 0.0]))
    )
    assert batch.row_inputs(0)["consciousness"] == "V"
    assert batch.row_inputs(0)["on_oxygen"] is True
    assert batch.row_inputs(1)["consciousness"] is None
    assert batch.row_inputs(1)["on_oxygen"] is None
    assert batch.reason(2) == "consciousness: 9 is not one of A, C, V, P, U"


@pytest.mark.parametrize(
    "changes",
    [
        {"pulse": np.full(N + 1, 70.0)},
        {"spo2_scale": np.array([1, 2])},
    ],
)
def test_unequal_lengths_are_refused(changes: dict[str, Any]) -> None:
    """All arrays must have one row per set."""
    with pytest.raises(ValueError, match="equal lengths"):
        score_many(**columns(**changes))


def test_arrays_must_be_one_dimensional() -> None:
    """A scalar or a matrix in place of a column is a programming error."""
    with pytest.raises(ValueError, match="pulse must be one-dimensional"):
        score_many(**columns(pulse=70.0))


def test_strided_string_arrays_are_read_correctly() -> None:
    """A non-contiguous view of ACVPU strings scores like a copy."""
    letters = np.array(["A", "x", "C", "x", "", "x"])[::2]
    assert bands(consciousness=letters) == ["none", "low-medium", "incomplete"]


def test_an_empty_batch_is_empty() -> None:
    """No rows in, no rows out."""
    batch = score_many(**{name: np.array([]) for name in columns()})
    assert (len(batch), batch.band.tolist()) == (0, [])
