"""Norwegian (bokmål) words and formats for the pages: Europe/Oslo times, decimal commas."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

__all__ = [
    "BANDS",
    "OSLO",
    "PARAMETERS",
    "Band",
    "age",
    "band_of",
    "clock",
    "date_time",
    "number",
    "trend_word",
]

OSLO = ZoneInfo("Europe/Oslo")


class Band:
    """How a NEWS2 band is shown: words and a shape, never colour alone."""

    def __init__(self, key: str, label: str, shape: str) -> None:
        self.key, self.label, self.shape = key, label, shape


BANDS = {
    "none": Band("none", "Ingen risiko", "○"),
    "low": Band("low", "Lav risiko", "●"),
    "low-medium": Band("low-medium", "Lav–middels (én parameter 3)", "◆"),
    "medium": Band("medium", "Middels risiko", "▲"),
    "high": Band("high", "Høy risiko", "■"),
    "incomplete": Band("incomplete", "Ufullstendig sett", "◌"),
    "invalid": Band("invalid", "Ugyldig", "✕"),
}
_UNKNOWN_BAND = Band("unknown", "Ingen NEWS2 ennå", "–")

PARAMETERS = {
    "respiration_rate": "Respirasjon",
    "spo2": "SpO₂",
    "air_or_oxygen": "Oksygen",
    "systolic_bp": "Systolisk BT",
    "pulse": "Puls",
    "consciousness": "Bevissthet",
    "temperature": "Temperatur",
}
_TRENDS = {
    "rising": ("↑", "stigende"),
    "falling": ("↓", "synkende"),
    "stable": ("→", "uendret"),
    "unknown": ("·", "for lite data"),
}


def band_of(name: str | None) -> Band:
    """The display of a band name (``None``: no score yet)."""
    return BANDS.get(name or "", _UNKNOWN_BAND)


def trend_word(trend: str) -> tuple[str, str]:
    """An arrow and the word for it."""
    return _TRENDS.get(trend, _TRENDS["unknown"])


def number(value: float | None, decimals: int = 0) -> str:
    """``37.25`` → ``"37,3"`` (Norwegian decimal comma, thin space between thousands)."""
    if value is None:
        return "–"
    text = f"{value:,.{decimals}f}".replace(",", "\u202f").replace(".", ",")
    return text.replace("-", "−")


def date_time(instant: dt.datetime | str | None) -> str:
    """``"12.03.2026 kl. 14:05"`` in Europe/Oslo."""
    if instant is None:
        return "–"
    if isinstance(instant, str):
        instant = dt.datetime.fromisoformat(instant)
    return instant.astimezone(OSLO).strftime("%d.%m.%Y kl. %H:%M")


def clock(instant: dt.datetime) -> str:
    """``"14:05:09"`` in Europe/Oslo."""
    return instant.astimezone(OSLO).strftime("%H:%M:%S")


def age(seconds: int | None) -> str:
    """How long ago, in words: ``"2 t 5 min"``, ``"3 d"``, ``"under 1 min"``."""
    if seconds is None:
        return "ingen måling"
    minutes = max(seconds, 0) // 60
    if minutes < 1:
        return "under 1 min"
    if minutes < 60:
        return f"{minutes} min"
    hours, rest = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} t {rest} min" if rest else f"{hours} t"
    return f"{hours // 24} d"
