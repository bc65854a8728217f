"""UCUM units: which units fit each canonical unit, and the exact conversion to it.

A table, not a general UCUM engine: malestrom accepts a handful of units per measurement, and a
linear table is exact, fast (no parsing per reading) and easy to review. No well-kept UCUM
library fitted (PyPI's candidates are young parsers pulling in pint and lark, and pint's affine
temperatures cost tens of microseconds per conversion). Codes are case-sensitive UCUM
(``c/s`` form); UCUM annotations like ``{beats}/min`` equal their unit without the annotation.
"""

from __future__ import annotations

from dataclasses import dataclass

from ingestion.exceptions import InvalidReadingError

__all__ = ["DECIMALS", "Conversion", "convert", "known_units", "units_for"]

DECIMALS = 4  # converted values are rounded to this many decimals (well below device precision)


@dataclass(frozen=True, slots=True)
class Conversion:
    """``canonical = value * factor + offset``."""

    factor: float
    offset: float = 0.0


_MMHG_PER_KPA = 1000 / 133.322387415  # 1 mm[Hg] = 133.322387415 Pa (UCUM)
_MMOL_PER_MG_GLUCOSE = 10 / 180.156  # glucose, molar mass 180.156 g/mol: mg/dL → mmol/L

# canonical unit → {accepted UCUM code → conversion}
_TABLE: dict[str, dict[str, Conversion]] = {
    "Cel": {
        "Cel": Conversion(1.0),
        "[degF]": Conversion(5 / 9, -32 * 5 / 9),
        "K": Conversion(1.0, -273.15),
    },
    "mm[Hg]": {
        "mm[Hg]": Conversion(1.0),
        "kPa": Conversion(_MMHG_PER_KPA),
        "Pa": Conversion(_MMHG_PER_KPA / 1000),
    },
    "kg": {
        "kg": Conversion(1.0),
        "g": Conversion(0.001),
        "[lb_av]": Conversion(0.45359237),
    },
    "%": {"%": Conversion(1.0), "1": Conversion(100.0)},
    "/min": {
        "/min": Conversion(1.0),
        "1/min": Conversion(1.0),
        "{beats}/min": Conversion(1.0),
        "{breaths}/min": Conversion(1.0),
        "/s": Conversion(60.0),
        "1/s": Conversion(60.0),
    },
    "L/min": {
        "L/min": Conversion(1.0),
        "mL/min": Conversion(0.001),
        "L/s": Conversion(60.0),
    },
    "mmol/L": {"mmol/L": Conversion(1.0), "mg/dL": Conversion(_MMOL_PER_MG_GLUCOSE)},
}
_ALL = frozenset(code for table in _TABLE.values() for code in table)


def units_for(canonical: str) -> list[str]:
    """Return the UCUM codes accepted for a canonical unit, canonical first."""
    return list(_TABLE.get(canonical, {canonical: Conversion(1.0)}))


def known_units() -> frozenset[str]:
    """Every UCUM code the table knows."""
    return _ALL


def convert(value: float, unit: str, canonical: str, *, expression: str = "") -> float:
    """Convert ``value`` in ``unit`` to ``canonical``.

    Raises:
        InvalidReadingError: the unit is not UCUM we know, or does not fit the canonical unit.
    """
    conversion = _TABLE.get(canonical, {}).get(unit)
    if conversion is None:
        if unit == canonical:
            return value
        fits = ", ".join(repr(u) for u in units_for(canonical))
        what = (
            "does not fit this measurement" if unit in _ALL else "is not a UCUM unit accepted here"
        )
        raise InvalidReadingError(
            f"unit {unit!r} {what}; use UCUM {fits} (canonical {canonical!r})",
            expression=expression,
            code="value",
        )
    if conversion.factor == 1.0 and conversion.offset == 0.0:
        return value
    return round(value * conversion.factor + conversion.offset, DECIMALS)
