"""Parsing CSV cells for the batch CLI: liberal where unambiguous, never guessing.

Each parser returns the column as ``score_many`` takes it, plus the rows whose cell
could not be parsed, with a reason naming the column.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final, TypeAlias

import numpy as np
import numpy.typing as npt

__all__ = ["Errors", "parse_consciousness", "parse_numbers", "parse_on_oxygen"]

#: Row index (within the chunk) -> reason.
Errors: TypeAlias = dict[int, str]

_BOOLEANS: Final = {
    **dict.fromkeys(("true", "t", "yes", "y", "1"), 1.0),
    **dict.fromkeys(("false", "f", "no", "n", "0"), 0.0),
}
_LETTERS: Final = frozenset("ACVPU")
_ACVPU_WORDS: Final = {
    "ALERT": "A",
    "CONFUSION": "C",
    "NEW CONFUSION": "C",
    "CONFUSED": "C",
    "VOICE": "V",
    "PAIN": "P",
    "UNRESPONSIVE": "U",
}


def parse_numbers(
    column: str, cells: Sequence[str], *, empty: float = math.nan
) -> tuple[npt.NDArray[np.float64], Errors]:
    """Parse numbers; an empty cell is ``empty`` (NaN, missing, by default)."""
    try:
        values = np.array([float(cell) if cell else empty for cell in cells], dtype=np.float64)
    except ValueError:
        return _parse_numbers_slowly(column, cells, empty)
    literal_nan = np.flatnonzero(np.isnan(values))
    errors = {row: _not_a_number(column, cells[row]) for row in literal_nan.tolist() if cells[row]}
    return values, errors


def _parse_numbers_slowly(
    column: str, cells: Sequence[str], empty: float
) -> tuple[npt.NDArray[np.float64], Errors]:
    """Parse numbers cell by cell, collecting the cells that are not numbers."""
    values = np.full(len(cells), math.nan)
    errors: Errors = {}
    for row, cell in enumerate(cells):
        text = cell.strip()
        try:
            number = float(text) if text else empty
        except ValueError:
            number = math.nan
        if text and math.isnan(number):
            errors[row] = _not_a_number(column, cell)
        values[row] = number
    return values, errors


def _not_a_number(column: str, cell: str) -> str:
    """Return the reason for a cell that is not a number."""
    return f"{column}: {cell!r} is not a number"


def parse_on_oxygen(cells: Sequence[str]) -> tuple[npt.NDArray[np.float64], Errors]:
    """Parse true/false, t/f, yes/no, y/n, 1/0 (any case) as 1.0/0.0; empty is NaN."""
    values = np.full(len(cells), math.nan)
    errors: Errors = {}
    for row, cell in enumerate(cells):
        text = cell.strip().lower()
        if text in _BOOLEANS:
            values[row] = _BOOLEANS[text]
        elif text:
            errors[row] = f"on_oxygen: {cell!r} is not true or false"
    return values, errors


def parse_consciousness(cells: Sequence[str]) -> npt.NDArray[np.str_]:
    """Normalise ACVPU cells: trimmed, any case, or the words (Alert, Voice, …)."""
    normalised = []
    for cell in cells:
        text = " ".join(cell.split()).upper()
        letter = text if len(text) == 1 else _ACVPU_WORDS.get(text, "")
        normalised.append(letter if letter in _LETTERS or not text else cell)
    return np.array(normalised, dtype=str)
