"""Batch CLI: ``python -m news2 INPUT.csv [-o OUTPUT.csv]``.

Reads observation sets from CSV, scores them with the vectorised path in chunks
(memory stays flat for millions of rows) and writes every input column plus
``news2_total``, ``news2_band``, ``news2_red_flag``, ``news2_partial_sum`` and
``news2_error``. A row that cannot be scored gets band ``invalid`` and a reason; it
never stops the file.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack
from itertools import islice
from typing import IO, Final

from news2.batch import News2Batch
from news2.cells import Errors, parse_consciousness, parse_numbers, parse_on_oxygen
from news2.chart import BANDS
from news2.vectorised import score_many

__all__ = ["INPUT_COLUMNS", "OUTPUT_COLUMNS", "CsvInputError", "main", "score_csv"]

#: Input columns (matched trimmed and case-insensitively); spo2_scale may be absent.
INPUT_COLUMNS: Final = (
    "respiration_rate",
    "spo2",
    "spo2_scale",
    "on_oxygen",
    "systolic_bp",
    "pulse",
    "consciousness",
    "temperature",
)
OUTPUT_COLUMNS: Final = (
    "news2_total",
    "news2_band",
    "news2_red_flag",
    "news2_partial_sum",
    "news2_error",
)
CHUNK_ROWS: Final = 1 << 16
_TOTALS: Final = [*(str(total) for total in range(21)), ""]  # index −1 (incomplete) is ""


class CsvInputError(ValueError):
    """The file as a whole cannot be read (no header, a required column missing)."""


def main(argv: list[str] | None = None, *, prog: str = "python -m news2") -> int:
    """Run the CLI; return the exit status (0 done, 2 the file cannot be read).

    Args:
        argv: Arguments without the program name (default: ``sys.argv[1:]``).
        prog: Program name for help and usage, e.g. ``"malestrom news2 score"``.
    """
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    parser.add_argument("input", help="CSV file with one observation set per row ('-': stdin)")
    parser.add_argument("-o", "--output", help="CSV file to write (default: stdout)")
    args = parser.parse_args(argv)
    try:
        with ExitStack() as stack:
            source = _open(stack, args.input, "r", sys.stdin)
            target = _open(stack, args.output, "w", sys.stdout)
            rows = score_csv(source, target)
    except (OSError, CsvInputError, csv.Error) as error:
        sys.stderr.write(f"news2: {error}\n")
        return 2
    sys.stderr.write(f"news2: scored {rows} rows\n")
    return 0


def _open(stack: ExitStack, path: str | None, mode: str, default: IO[str]) -> IO[str]:
    """Open a file for CSV (stdin/stdout for ``-`` or none)."""
    if path is None or path == "-":
        return default
    encoding = "utf-8-sig" if mode == "r" else "utf-8"
    return stack.enter_context(open(path, mode, encoding=encoding, newline=""))


def score_csv(source: IO[str], target: IO[str]) -> int:
    """Score every row of a CSV stream into another; return the number of rows."""
    reader = csv.reader(source)
    header = next(reader, None)
    if header is None:
        raise CsvInputError("the input is empty (no header row)")
    positions = _positions(header)
    writer = csv.writer(target, lineterminator="\n")
    writer.writerow([*header, *OUTPUT_COLUMNS])
    count = 0
    for chunk in _chunks(reader):
        writer.writerows(_score_chunk(chunk, positions, len(header)))
        count += len(chunk)
    return count


def _positions(header: Sequence[str]) -> dict[str, int | None]:
    """Find each input column in the header; only spo2_scale may be missing."""
    names = [name.strip().lower() for name in header]
    positions = {
        column: names.index(column) if column in names else None for column in INPUT_COLUMNS
    }
    absent = [column for column, at in positions.items() if at is None and column != "spo2_scale"]
    if absent:
        raise CsvInputError(f"missing columns: {', '.join(absent)}")
    return positions


def _chunks(reader: Iterator[list[str]]) -> Iterator[list[list[str]]]:
    """Yield lists of rows, skipping blank lines."""
    while chunk := [row for row in islice(reader, CHUNK_ROWS) if row]:
        yield chunk


def _score_chunk(
    rows: list[list[str]], positions: dict[str, int | None], width: int
) -> Iterator[list[str]]:
    """Score one chunk of rows; yield each (padded to the header) with the NEWS2 columns."""
    cells = [row[:width] + [""] * (width - len(row)) for row in rows]
    too_long = {
        at: f"row has {len(row)} fields, the header {width}"
        for at, row in enumerate(rows)
        if len(row) > width
    }
    columns = list(zip(*cells, strict=True))
    empty = ("",) * len(rows)
    named = {name: empty if at is None else columns[at] for name, at in positions.items()}
    batch, errors = _score_columns(named)
    outputs = _outputs(batch, _first_errors([too_long, *errors], len(rows)))
    for row, output in zip(cells, outputs, strict=True):
        yield [*row, *output]


def _score_columns(columns: Mapping[str, Sequence[str]]) -> tuple[News2Batch, list[Errors]]:
    """Parse the input columns and score them; return the parse errors by column."""
    parsed: dict[str, object] = {}
    errors: list[Errors] = []
    for name in INPUT_COLUMNS:
        if name == "on_oxygen":
            parsed[name], column_errors = parse_on_oxygen(columns[name])
        elif name == "consciousness":
            parsed[name], column_errors = parse_consciousness(columns[name]), {}
        else:
            empty = 1.0 if name == "spo2_scale" else math.nan
            parsed[name], column_errors = parse_numbers(name, columns[name], empty=empty)
        errors.append(column_errors)
    return score_many(**parsed), errors


def _first_errors(errors: list[Errors], size: int) -> list[str | None]:
    """Return each row's first parse error (errors are in column order), or ``None``."""
    first: list[str | None] = [None] * size
    for column_errors in reversed(errors):
        for row, reason in column_errors.items():
            first[row] = reason
    return first


def _outputs(batch: News2Batch, parse_errors: list[str | None]) -> Iterator[tuple[str, ...]]:
    """Yield the NEWS2 output cells of each row."""
    rows = zip(
        batch.total.tolist(),
        batch.band_code.tolist(),
        batch.red_flag.tolist(),
        batch.partial_sum.tolist(),
        batch.valid.tolist(),
        parse_errors,
        strict=True,
    )
    for at, (total, band, red, partial, valid, parse_error) in enumerate(rows):
        if parse_error is None and valid:
            yield _TOTALS[total], BANDS[band], "true" if red else "false", str(partial), ""
        else:
            yield "", "invalid", "false", "", parse_error or batch.reason(at) or ""
