"""Time-series charts drawn on the server as SVG: no chart script, nothing to download, and a
chart a screen reader can name (``<title>``) with its numbers beside it as a table.

Each line carries ``data-series`` and ``data-points`` (how many points it drew), so scripts and
tests can check what was drawn. NEWS2 scoring bands are drawn behind the lines.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from html import escape

__all__ = ["BandRange", "Point", "Series", "line_chart"]

WIDTH, HEIGHT = 720, 220
_LEFT, _RIGHT, _TOP, _BOTTOM = 48, 12, 10, 28
_X = Callable[[dt.datetime], float]
_Y = Callable[[float], float]


@dataclass(frozen=True, slots=True)
class Point:
    """One drawn value; ``low``/``high`` give a bucket's range (drawn as a whisker)."""

    at: dt.datetime
    value: float
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True, slots=True)
class Series:
    """One line: a name, its CSS class and its points in time order."""

    name: str
    css: str
    points: list[Point] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class BandRange:
    """A NEWS2 subscore band of values ``[low, high)`` drawn behind the lines."""

    low: float
    high: float
    score: int


def line_chart(
    *,
    title: str,
    series: list[Series],
    start: dt.datetime,
    end: dt.datetime,
    y_range: tuple[float, float],
    bands: list[BandRange] | None = None,
    ticks: list[tuple[dt.datetime, str]] | None = None,
    chart_id: str,
) -> str:
    """The SVG markup of a chart over ``[start, end)``, the y axis widened to fit the data."""
    lo, hi = _fit(y_range, series)
    span = (end - start).total_seconds() or 1.0

    def x(at: dt.datetime) -> float:
        return _LEFT + (at - start).total_seconds() / span * (WIDTH - _LEFT - _RIGHT)

    def y(value: float) -> float:
        return HEIGHT - _BOTTOM - (value - lo) / (hi - lo) * (HEIGHT - _TOP - _BOTTOM)

    parts = [
        f'<svg class="chart" id="{chart_id}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="{chart_id}-title" data-chart="{escape(title)}">',
        f'<title id="{chart_id}-title">{escape(title)}</title>',
    ]
    for band in bands or []:
        top, bottom = y(min(band.high, hi)), y(max(band.low, lo))
        if bottom > top:
            parts.append(
                f'<rect class="band band-{band.score}" data-score="{band.score}" x="{_LEFT}" '
                f'y="{top:.1f}" width="{WIDTH - _LEFT - _RIGHT}" height="{bottom - top:.1f}"/>'
            )
    parts += _axes(lo, hi, y, ticks or [], x)
    for line in series:
        parts += _line(line, x, y)
    parts.append("</svg>")
    return "".join(parts)


def _fit(y_range: tuple[float, float], series: list[Series]) -> tuple[float, float]:
    values = [
        v for s in series for p in s.points for v in (p.value, p.low, p.high) if v is not None
    ]
    lo, hi = min([y_range[0], *values]), max([y_range[1], *values])
    return (lo, hi) if hi > lo else (lo - 1, hi + 1)


def _axes(lo: float, hi: float, y: _Y, ticks: list[tuple[dt.datetime, str]], x: _X) -> list[str]:
    bottom = HEIGHT - _BOTTOM
    parts = [f'<line class="axis" x1="{_LEFT}" y1="{bottom}" x2="{WIDTH - _RIGHT}" y2="{bottom}"/>']
    for value in (lo, (lo + hi) / 2, hi):
        label = f"{value:.1f}".rstrip("0").rstrip(".").replace(".", ",")
        parts.append(
            f'<text class="tick" x="{_LEFT - 6}" y="{y(value) + 4:.1f}" '
            f'text-anchor="end">{label}</text>'
        )
    for at, label in ticks:
        parts.append(
            f'<text class="tick" x="{x(at):.1f}" y="{HEIGHT - 8}" '
            f'text-anchor="middle">{escape(label)}</text>'
        )
    return parts


def _line(line: Series, x: _X, y: _Y) -> list[str]:
    coords = " ".join(f"{x(p.at):.1f},{y(p.value):.1f}" for p in line.points)
    parts = [
        f'<g class="series {line.css}" data-series="{escape(line.name)}" '
        f'data-points="{len(line.points)}">',
        f'<polyline fill="none" points="{coords}"/>',
    ]
    for p in line.points:
        if p.low is not None and p.high is not None and p.high > p.low:
            parts.append(
                f'<line class="whisker" x1="{x(p.at):.1f}" y1="{y(p.low):.1f}" '
                f'x2="{x(p.at):.1f}" y2="{y(p.high):.1f}"/>'
            )
        parts.append(f'<circle r="2.5" cx="{x(p.at):.1f}" cy="{y(p.value):.1f}"/>')
    parts.append("</g>")
    return parts
