"""Pure parts of the storage queries: the aggregate plan and FHIR parameter parsing."""

from __future__ import annotations

import datetime as dt

import pytest

from api.routes import params
from api.storage import Segment, plan_segments
from ingestion.exceptions import InvalidReadingError


def _t(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("start", "end", "grains", "expected"),
    [
        ("2026-01-01T00:00", "2026-01-03T00:00", ["daily", "hourly"],
         [("daily", "2026-01-01T00:00", "2026-01-03T00:00")]),
        ("2026-01-01T10:20", "2026-01-03T05:10", ["daily", "hourly"],
         [("raw", "2026-01-01T10:20", "2026-01-01T11:00"),
          ("hourly", "2026-01-01T11:00", "2026-01-02T00:00"),
          ("daily", "2026-01-02T00:00", "2026-01-03T00:00"),
          ("hourly", "2026-01-03T00:00", "2026-01-03T05:00"),
          ("raw", "2026-01-03T05:00", "2026-01-03T05:10")]),
        ("2026-01-01T10:20", "2026-01-01T10:50", ["daily", "hourly"],
         [("raw", "2026-01-01T10:20", "2026-01-01T10:50")]),
        ("2026-01-01T10:20", "2026-01-01T13:00", ["hourly"],
         [("raw", "2026-01-01T10:20", "2026-01-01T11:00"),
          ("hourly", "2026-01-01T11:00", "2026-01-01T13:00")]),
        ("2026-01-01T10:20", "2026-01-01T13:00", [],
         [("raw", "2026-01-01T10:20", "2026-01-01T13:00")]),
        ("2026-01-01T10:00", "2026-01-01T10:00", ["hourly"], []),
    ],
)  # fmt: skip
def test_a_range_is_whole_buckets_of_the_coarsest_grain_then_raw_edges(
    start: str, end: str, grains: list[str], expected: list[tuple[str, str, str]]
) -> None:
    """plan_segments covers [start, end) exactly, coarsest whole buckets first, raw at the edges."""
    assert plan_segments(_t(start), _t(end), grains) == [
        Segment(source, _t(a), _t(b)) for source, a, b in expected
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-26", [(">=", "2026-11-26T00:00"), ("<", "2026-11-27T00:00")]),
        ("eq2026-11", [(">=", "2026-11-01T00:00"), ("<", "2026-12-01T00:00")]),
        ("ge2026-11-26T08:00:00Z", [(">=", "2026-11-26T08:00")]),
        ("gt2026-11-26", [(">=", "2026-11-27T00:00")]),
        ("le2026-12", [("<", "2027-01-01T00:00")]),
        ("lt2026-11-26T09:30+01:00", [("<", "2026-11-26T08:30")]),
        ("ge2026", [(">=", "2026-01-01T00:00")]),
    ],
)
def test_date_prefixes_bound_the_effective_time(
    value: str, expected: list[tuple[str, str]]
) -> None:
    """A date parameter covers the range its precision implies, shifted by its prefix."""
    assert params.date_bounds(value) == [(op, _t(t)) for op, t in expected]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("8867-4", [(None, "8867-4")]),
        ("http://loinc.org|8867-4", [("http://loinc.org", "8867-4")]),
        ("8867-4,http://snomed.info/sct|1104051000000101",
         [(None, "8867-4"), ("http://snomed.info/sct", "1104051000000101")]),
    ],
)  # fmt: skip
def test_code_tokens_match_system_and_code_or_code_alone(
    value: str, expected: list[tuple[str | None, str]]
) -> None:
    """code=system|code names one coding; code alone matches that code in any system."""
    assert params.codes_param(value) == expected


@pytest.mark.parametrize("value", ["ne2026-11-26", "sa2026", "2026-13-01", "26-11-2026", ""])
def test_unsupported_dates_are_refused(value: str) -> None:
    """Prefixes we do not implement and malformed dates are refused, never ignored."""
    with pytest.raises(InvalidReadingError):
        params.date_bounds(value)


def test_the_period_includes_its_end_at_its_precision() -> None:
    """period=2026-11-01/2026-11-02 covers both whole days (FHIR Period semantics)."""
    assert params.period_param("2026-11-01/2026-11-02") == (
        _t("2026-11-01T00:00"),
        _t("2026-11-03T00:00"),
    )


def test_a_cursor_round_trips() -> None:
    """The keyset cursor decodes to the (effective, id) it was made from."""
    when, rid = _t("2026-11-26T08:00:00.123456"), "6b3f3c1e-2d7a-4e0b-9a61-3c2f8e9d1a01"
    assert params.decode_cursor(params.encode_cursor(when, rid)) == (when, rid)


def test_a_changed_cursor_is_refused() -> None:
    """A cursor whose content or checksum was changed is not accepted."""
    cursor = params.encode_cursor(_t("2026-11-26T08:00:00"), "6b3f3c1e-2d7a-4e0b-9a61-3c2f8e9d1a01")
    middle = len(cursor) // 2
    flipped = cursor[:middle] + ("A" if cursor[middle] != "A" else "B") + cursor[middle + 1 :]
    for changed in (flipped, cursor[:-4], "x" + cursor[1:]):
        with pytest.raises(InvalidReadingError, match="_cursor"):
            params.decode_cursor(changed)
