"""The charts of one patient's vital signs over a period: raw points for 24 hours, hourly
means (with min–max whiskers) for 7 days, daily means for 30 days — the buckets of
``/api/v1/trends`` — with the NEWS2 scoring bands behind the line."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection

from api import queries
from api.storage import aggregate_grains, plan_segments
from api.web import data
from api.web.charts import BandRange, Point, Series, line_chart
from api.web.format import OSLO
from ingestion.codes import LOINC
from news2 import chart as news2_chart

__all__ = ["PERIODS", "VITALS", "Vital", "bands_of", "vital_charts"]

# period → (length, bucket width or None for raw points, label)
PERIODS: dict[str, tuple[dt.timedelta, dt.timedelta | None, str]] = {
    "24t": (dt.timedelta(hours=24), None, "siste 24 timer"),
    "7d": (dt.timedelta(days=7), dt.timedelta(hours=1), "siste 7 døgn (timesnitt)"),
    "30d": (dt.timedelta(days=30), dt.timedelta(days=1), "siste 30 døgn (døgnsnitt)"),
}
_GRAINS = {dt.timedelta(hours=1): ["hourly"], dt.timedelta(days=1): ["daily", "hourly"]}


@dataclass(frozen=True, slots=True)
class Vital:
    """A vital sign as the pages chart it."""

    code: str
    title: str
    unit: str
    y_range: tuple[float, float]
    steps: news2_chart.Steps | None = None
    resolution: int = 1
    components: tuple[tuple[str, str], ...] = ()  # (component code, name) of a panel


VITALS = (
    Vital("8867-4", "Puls", "slag/min", (40, 140), news2_chart.PULSE),
    Vital("2708-6", "Oksygenmetning (SpO₂)", "%", (85, 100), news2_chart.SPO2_SCALE_1),
    Vital("9279-1", "Respirasjonsfrekvens", "pust/min", (8, 30), news2_chart.RESPIRATION_RATE),
    Vital("8310-5", "Temperatur", "°C", (35, 40), news2_chart.TEMPERATURE, resolution=10),
    Vital(
        "85354-9",
        "Blodtrykk",
        "mmHg",
        (50, 200),
        news2_chart.SYSTOLIC_BP,
        components=(("8480-6", "Systolisk"), ("8462-4", "Diastolisk")),
    ),
    Vital("29463-7", "Vekt", "kg", (40, 100)),
    Vital("15074-8", "Blodsukker", "mmol/L", (3, 12)),
)


def bands_of(steps: news2_chart.Steps | None, resolution: int = 1) -> list[BandRange]:
    """The NEWS2 sub-score bands of a parameter as value ranges (chart units → values)."""
    if steps is None:
        return []
    edges = [-1e9, *(e / resolution for e in steps.edges), 1e9]
    return [BandRange(edges[i], edges[i + 1], s) for i, s in enumerate(steps.scores)]


def ticks(start: dt.datetime, end: dt.datetime, period: str) -> list[tuple[dt.datetime, str]]:
    """About six time labels in Europe/Oslo."""
    step = (end - start) / 6
    form = "%H:%M" if period == "24t" else "%d.%m."
    return [
        ((start + step * i), (start + step * i).astimezone(OSLO).strftime(form))
        for i in range(1, 6)
    ]


async def vital_charts(
    *,
    conn: AsyncConnection[Any],
    keys: list[str],
    period: str,
    now: dt.datetime,
    spo2_scale: int = 1,
    with_bands: bool = True,
    only_with_data: bool = False,
) -> list[dict[str, Any]]:
    """One chart per vital sign with the drawn series (and the numbers, for a table)."""
    length, width, _ = PERIODS[period]
    start = now - length
    charts = []
    for vital in VITALS:
        series = await _series(conn, keys, vital, start, now, width)
        if only_with_data and not any(s.points for s in series):
            continue
        steps = vital.steps
        if vital.code == "2708-6" and spo2_scale == 2:
            steps = news2_chart.SPO2_SCALE_2_AIR
        svg = line_chart(
            title=f"{vital.title} ({vital.unit})",
            series=series,
            start=start,
            end=now,
            y_range=vital.y_range,
            bands=bands_of(steps, vital.resolution) if with_bands else [],
            ticks=ticks(start, now, period),
            chart_id=f"chart-{vital.code}",
        )
        charts.append({"vital": vital, "svg": svg, "series": series})
    return charts


async def _series(
    conn: AsyncConnection[Any],
    keys: list[str],
    vital: Vital,
    start: dt.datetime,
    end: dt.datetime,
    width: dt.timedelta | None,
) -> list[Series]:
    """One series per component of a panel (blood pressure), else one of the code's values."""
    named = vital.components or ((vital.code, vital.title),)
    return [
        Series(name, css, await _points(conn, keys, code, start, end, width))
        for (code, name), css in zip(named, ("line-a", "line-b"), strict=False)
    ]


async def _points(
    conn: AsyncConnection[Any],
    keys: list[str],
    code: str,
    start: dt.datetime,
    end: dt.datetime,
    width: dt.timedelta | None,
) -> list[Point]:
    """Every value of a code (or of a component, in the panels too), or its bucket means."""
    if width is None:
        raw = await data.raw_series(conn=conn, keys=keys, code=code, since=start)
        return [Point(t, v) for t, v in raw]
    codes = [(LOINC, code)]
    segments = plan_segments(start, end, aggregate_grains(codes, _GRAINS[width]))
    buckets = await queries.aggregate_buckets(
        conn=conn, keys=keys, codes=codes, segments=segments, width=width
    )
    return [_point(b, total / n, lo, hi, width) for b, n, total, lo, hi in buckets if b is not None]


def _point(at: dt.datetime, mean: float, lo: float, hi: float, width: dt.timedelta | None) -> Point:
    """A bucket is drawn at its middle."""
    return Point(at + width / 2, mean, lo, hi) if width else Point(at, mean)
