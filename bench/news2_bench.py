"""Benchmark the NEWS2 engine: ``score`` (one set at a time) against ``score_many``.

Usage: ``python bench/news2_bench.py [--sets 1000000] [--scalar-sets 100000] [--repeat 5]``

Inputs are built first; only the scoring calls are timed. The scalar path is timed on
a subsample and extrapolated (the output says so). Prints figures; asserts nothing
about time.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import numpy as np

from news2 import InvalidVitalSignError, score, score_many

MISSING = 0.02  # share of each value that is missing
NUMBERS = ("respiration_rate", "spo2", "systolic_bp", "pulse", "temperature")


def random_sets(size: int, seed: int = 2017) -> dict[str, Any]:
    """Return a realistic mix of observation sets as arrays (NaN/"" missing, a few invalid)."""
    rng = np.random.default_rng(seed)
    sets: dict[str, Any] = {
        "respiration_rate": np.round(rng.normal(17, 4, size)).clip(4, 60),
        "spo2": np.round(rng.normal(95.5, 3, size)).clip(70, 100),
        "systolic_bp": np.round(rng.normal(128, 22, size)).clip(60, 260),
        "pulse": np.round(rng.normal(82, 17, size)).clip(30, 200),
        "temperature": np.round(rng.normal(37.0, 0.7, size), 1).clip(33, 42),
    }
    sets["temperature"][rng.random(size) < 0.001] = 98.6  # Fahrenheit given as °C: invalid
    for name in NUMBERS:
        sets[name][rng.random(size) < MISSING] = np.nan
    letters = rng.choice(
        np.array(["A", "C", "V", "P", "U"]), size, p=[0.94, 0.03, 0.01, 0.01, 0.01]
    )
    letters[rng.random(size) < MISSING] = ""
    sets["consciousness"] = letters
    sets["on_oxygen"] = np.where(rng.random(size) < MISSING, np.nan, rng.random(size) < 0.1)
    sets["spo2_scale"] = np.where(rng.random(size) < 0.05, 2, 1)
    return sets


def scalar_rows(sets: dict[str, Any], size: int) -> list[dict[str, Any]]:
    """Return the first ``size`` sets as keyword arguments for ``score``."""
    columns = {name: values[:size].tolist() for name, values in sets.items()}
    columns["consciousness"] = [letter or None for letter in columns["consciousness"]]
    columns["on_oxygen"] = [None if v != v else bool(v) for v in columns["on_oxygen"]]
    for name in NUMBERS:
        columns[name] = [None if v != v else v for v in columns[name]]
    return [
        dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)
    ]


def score_all(rows: list[dict[str, Any]]) -> list[int]:
    """Score each row with the scalar path; −1 for incomplete, −2 for invalid."""
    totals = []
    for row in rows:
        try:
            total = score(**row).total
        except InvalidVitalSignError:
            total = -2
        totals.append(-1 if total is None else total)
    return totals


def timed(function: Any, repeat: int) -> tuple[list[float], Any]:
    """Run a function ``repeat`` times; return the durations and the last result."""
    durations, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = function()
        durations.append(time.perf_counter() - start)
    return durations, result


def say(line: str) -> None:
    """Print one line of figures."""
    print(line)


def main() -> None:
    """Run the benchmark and print sets per second."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sets", type=int, default=1_000_000)
    parser.add_argument("--scalar-sets", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    sets = random_sets(args.sets)
    rows = scalar_rows(sets, min(args.scalar_sets, args.sets))
    score_many(**sets)  # warm-up
    many, batch = timed(lambda: score_many(**sets), args.repeat)
    scalar, totals = timed(lambda: score_all(rows), 1)
    many_rate = args.sets / statistics.median(many)
    scalar_rate = len(rows) / scalar[0]
    expected = np.where(batch.valid[: len(rows)], batch.total[: len(rows)], -2).tolist()
    mix = f"{MISSING:.0%} of each value missing, ~0.1 % invalid, 10 % on oxygen, 5 % scale 2"
    say(f"news2 benchmark: {args.sets:,} random observation sets ({mix})")
    median_ms = statistics.median(many) * 1e3
    best = args.sets / min(many)
    say(
        f"score_many: {many_rate:,.0f} sets/s ({args.sets:,} sets in {median_ms:.1f} ms, "
        f"median of {args.repeat}; best {best:,.0f} sets/s)"
    )
    extrapolated = args.sets / scalar_rate
    say(
        f"score:      {scalar_rate:,.0f} sets/s (timed on a {len(rows):,}-set subsample in "
        f"{scalar[0]:.2f} s; extrapolated to {args.sets:,} sets: {extrapolated:.1f} s)"
    )
    say(f"ratio:      score_many is {many_rate / scalar_rate:,.0f} times faster than score")
    agree = sum(a == b for a, b in zip(totals, expected, strict=True))
    say(f"agreement:  {agree:,}/{len(rows):,} subsample sets scored identically by both paths")


if __name__ == "__main__":
    main()
