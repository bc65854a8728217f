"""Properties: ``score`` matches an independent reading of the chart; ``score_many``, ``score``.

The oracle below is written straight from the chart, separately from the tables the
engine uses, so a mistake in those tables cannot hide behind the agreement test.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import news2
import news2.vectorised
from news2 import ITEMS, InvalidVitalSignError, News2Result, score, score_many

NUMERIC = ("respiration_rate", "spo2", "systolic_bp", "pulse", "temperature")
TENTHS = {"temperature"}


def half_up(value: float, places: int) -> Decimal:
    """Round a float's shortest decimal form half-up."""
    return Decimal(repr(value)).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def oracle_subscores(row: dict[str, Any]) -> dict[str, int | None]:
    """Chart 1 as if-chains, on values already rounded."""
    out: dict[str, int | None] = dict.fromkeys(ITEMS)
    rr, sat, oxy = row["respiration_rate"], row["spo2"], row["on_oxygen"]
    if rr is not None:
        rr = half_up(rr, 0)
        out["respiration_rate"] = (
            3 if rr <= 8 else 1 if rr <= 11 else 0 if rr <= 20 else 2 if rr <= 24 else 3
        )
    if sat is not None:
        sat = half_up(sat, 0)
        if row["spo2_scale"] == 1:
            out["spo2"] = 3 if sat <= 91 else 2 if sat <= 93 else 1 if sat <= 95 else 0
        elif sat <= 92 or oxy is False:
            out["spo2"] = 3 if sat <= 83 else 2 if sat <= 85 else 1 if sat <= 87 else 0
        elif oxy is True:
            out["spo2"] = 1 if sat <= 94 else 2 if sat <= 96 else 3
    if oxy is not None:
        out["air_or_oxygen"] = 2 if oxy else 0
    if row["systolic_bp"] is not None:
        bp = half_up(row["systolic_bp"], 0)
        out["systolic_bp"] = (
            3 if bp <= 90 else 2 if bp <= 100 else 1 if bp <= 110 else 0 if bp <= 219 else 3
        )
    if row["pulse"] is not None:
        hr = half_up(row["pulse"], 0)
        out["pulse"] = (
            3
            if hr <= 40
            else 1
            if hr <= 50
            else 0
            if hr <= 90
            else 1
            if hr <= 110
            else 2
            if hr <= 130
            else 3
        )
    if row["consciousness"] is not None:
        out["consciousness"] = 0 if row["consciousness"] == "A" else 3
    if row["temperature"] is not None:
        t = half_up(row["temperature"], 1)
        out["temperature"] = (
            3 if t <= Decimal("35.0") else 1 if t <= 36 else 0 if t <= 38 else 1 if t <= 39 else 2
        )
    return out


def oracle_band(subscores: dict[str, int | None]) -> tuple[int | None, str, bool]:
    """Chart 3 with this project's incomplete rule."""
    present = [s for s in subscores.values() if s is not None]
    red, total = 3 in present, sum(present)
    if len(present) < len(subscores):
        return None, "incomplete", red
    band = (
        "high"
        if total >= 7
        else "medium"
        if total >= 5
        else "low-medium"
        if red and total
        else "low"
        if total
        else "none"
    )
    return total, band, red


def near(value: float) -> st.SearchStrategy[float]:
    """Floats a few ulps either side of a value."""
    return st.integers(-3, 3).map(lambda ulps: value + ulps * math.ulp(value))


def number(low: int, high: int, *, tenths: bool) -> st.SearchStrategy[float | None]:
    """Values across a parameter's domain, its limits and beyond, and near every half-step."""
    scale = 10 if tenths else 1
    halves = st.integers(low * scale - 2, high * scale + 2).map(lambda j: (2 * j + 1) / (2 * scale))
    return st.one_of(
        st.none(),
        st.integers(low - 2, high + 2).map(float),
        st.integers(100 * low - 200, 100 * high + 200).map(lambda k: k / 100),
        halves,
        halves.flatmap(near),
        st.floats(allow_nan=False),
        st.floats(-1, 1),
    )


ROW = st.fixed_dictionaries(
    {
        "respiration_rate": number(0, 82, tenths=False),
        "spo2": number(0, 101, tenths=False),
        "on_oxygen": st.sampled_from([True, False, None]),
        "systolic_bp": number(0, 302, tenths=False),
        "pulse": number(0, 302, tenths=False),
        "consciousness": st.sampled_from(["A", "C", "V", "P", "U", None]),
        "temperature": number(24, 46, tenths=True),
        "spo2_scale": st.sampled_from([1, 2]),
    }
)
ODD_ROW = ROW.flatmap(
    lambda row: st.fixed_dictionaries(
        {
            **{name: st.just(value) for name, value in row.items()},
            "on_oxygen": st.sampled_from([row["on_oxygen"], 1, 0.5, "yes"]),
            "consciousness": st.sampled_from([row["consciousness"], "", "X", "a", "AC", 3]),
            "spo2_scale": st.sampled_from([row["spo2_scale"], 0, 3, 1.5, True]),
        }
    )
)


@settings(max_examples=2000, deadline=None)
@given(ROW)
def test_score_matches_an_independent_reading_of_the_chart(row: dict[str, Any]) -> None:
    """Total, band and red flag equal the oracle's whenever the input is a measurement."""
    try:
        result = score(**row)
    except InvalidVitalSignError:
        return
    subscores = oracle_subscores(row)
    assert dict(result.subscores) == subscores
    assert (result.total, result.band, result.red_flag) == oracle_band(subscores)


def expected(row: dict[str, Any]) -> tuple[int, str, bool, int, bool, str]:
    """What score_many must say of a row, from the scalar scorer."""
    try:
        result: News2Result = score(**row)
    except InvalidVitalSignError as error:
        return -1, "invalid", False, 0, False, str(error)
    total = -1 if result.total is None else result.total
    return total, result.band, result.red_flag, result.partial_sum, True, ""


def as_arrays(rows: list[dict[str, Any]], strings: bool, per_row_scale: bool) -> dict[str, Any]:
    """Columns in the array encodings: NaN for missing numbers, objects or strings otherwise."""
    columns: dict[str, Any] = {
        name: np.array([math.nan if row[name] is None else row[name] for row in rows], dtype=float)
        for name in NUMERIC
    }
    columns["on_oxygen"] = np.array([row["on_oxygen"] for row in rows], dtype=object)
    letters = [row["consciousness"] for row in rows]
    if strings and all(letter is None or isinstance(letter, str) for letter in letters):
        columns["consciousness"] = np.array(
            ["" if letter is None else letter for letter in letters]
        )
    else:
        columns["consciousness"] = np.array(letters, dtype=object)
    scales = [row["spo2_scale"] for row in rows]
    columns["spo2_scale"] = np.array(scales, dtype=object) if per_row_scale else scales[0]
    return columns


def assert_agree(rows: list[dict[str, Any]], strings: bool, per_row_scale: bool) -> None:
    """score_many gives every row what score gives it."""
    if not per_row_scale:
        rows = [{**row, "spo2_scale": rows[0]["spo2_scale"]} for row in rows]
    batch = score_many(**as_arrays(rows, strings, per_row_scale))
    actual = zip(
        batch.total.tolist(),
        batch.band.tolist(),
        batch.red_flag.tolist(),
        batch.partial_sum.tolist(),
        batch.valid.tolist(),
        batch.reasons.tolist(),
        strict=True,
    )
    assert list(actual) == [expected(row) for row in rows]


@settings(max_examples=800, deadline=None)
@given(st.lists(ROW, min_size=1, max_size=40), st.booleans(), st.booleans())
def test_score_many_agrees_with_score(
    rows: list[dict[str, Any]], strings: bool, per_row_scale: bool
) -> None:
    """Every row of score_many equals score on that row, invalid rows included."""
    assert_agree(rows, strings, per_row_scale)


@settings(max_examples=300, deadline=None)
@given(st.lists(ODD_ROW, min_size=1, max_size=20), st.booleans(), st.booleans())
def test_score_many_agrees_with_score_on_odd_inputs(
    rows: list[dict[str, Any]], strings: bool, per_row_scale: bool
) -> None:
    """Mistyped on_oxygen, consciousness and scale are invalid in both paths alike."""
    assert_agree(rows, strings, per_row_scale)


@settings(max_examples=400, deadline=None)
@given(st.lists(ROW, min_size=1, max_size=40), st.booleans())
def test_batch_subscores_agree_with_score(rows: list[dict[str, Any]], per_row_scale: bool) -> None:
    """Each item's subscore from the batch equals the scalar subscore on every valid row."""
    if not per_row_scale:
        rows = [{**row, "spo2_scale": rows[0]["spo2_scale"]} for row in rows]
    batch = score_many(**as_arrays(rows, True, per_row_scale))
    for index, row in enumerate(rows):
        if not batch.valid[index]:
            continue
        scalar = score(**row).subscores
        vector = {name: int(values[index]) for name, values in batch.subscores.items()}
        assert vector == {name: -1 if sub is None else sub for name, sub in scalar.items()}


DOMAINS = {
    "respiration_rate": (0, 85),
    "spo2": (0, 105),
    "systolic_bp": (0, 310),
    "pulse": (0, 310),
    "temperature": (20, 50),
}


@pytest.mark.parametrize(("name", "domain"), DOMAINS.items())
@pytest.mark.parametrize("on_oxygen", [True, False])
def test_every_hundredth_rounds_alike_in_both_paths(
    name: str, domain: tuple[int, int], on_oxygen: bool
) -> None:
    """k/100 across each parameter's domain scores the same in both paths."""
    values = np.arange(100 * domain[0], 100 * domain[1] + 1) / 100
    columns = {
        other: np.full(len(values), 37.0 if other == "temperature" else 60.0) for other in NUMERIC
    }
    columns[name] = values
    fixed = {"on_oxygen": on_oxygen, "consciousness": "A", "spo2_scale": 2}
    vectors = {
        "on_oxygen": np.full(len(values), on_oxygen),
        "consciousness": np.full(len(values), "A"),
    }
    batch = score_many(**columns, **vectors, spo2_scale=2)
    for at, value in enumerate(values.tolist()):
        row = {**{other: float(columns[other][at]) for other in NUMERIC}, name: value, **fixed}
        want = expected(row)
        assert (batch.total[at], batch.band_code[at], batch.valid[at]) == (
            want[0],
            news2.BANDS.index(want[1]),
            want[4],
        ), value


def test_blocks_join_seamlessly(monkeypatch: pytest.MonkeyPatch) -> None:
    """Scoring in small blocks gives the same as one block."""
    rows = [
        {
            **{"respiration_rate": 10.0 + i, "spo2": 90.0 + i % 11, "on_oxygen": bool(i % 2)},
            **{"systolic_bp": 95.0 + 3 * i, "pulse": 45.0 + 4 * i, "temperature": 35.0 + i / 10},
            **{"consciousness": "ACVPU"[i % 5], "spo2_scale": 1 + i % 2},
        }
        for i in range(23)
    ]
    monkeypatch.setattr(news2.vectorised, "BLOCK_ROWS", 4)
    assert_agree(rows, strings=True, per_row_scale=True)
