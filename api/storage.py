"""The storage profile (which engine the schema was built for) and the aggregate plan.

Both engines expose the same relations: ``observations``, ``observations_latest`` and the
hourly and daily aggregates (on plain PostgreSQL hourly delta rows appended by the writer and a
daily view of them, on TimescaleDB continuous aggregates with real-time aggregation), which
readers sum per bucket, as a bucket may have several rows. A time range is answered from the
coarsest aggregate that covers whole buckets of it, and from raw rows at its ragged edges, so
the answer equals a computation over the raw rows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection

from ingestion.codes import NEWS2_CODE

__all__ = [
    "GRAINS",
    "Segment",
    "StorageProfile",
    "aggregate_grains",
    "plan_segments",
    "probe_storage",
]

GRAINS: dict[str, dt.timedelta] = {
    "daily": dt.timedelta(days=1),
    "hourly": dt.timedelta(hours=1),
}
ORIGIN = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)  # buckets are UTC-aligned, as date_bin's


@dataclass(frozen=True, slots=True)
class StorageProfile:
    """What /healthz reports about storage: the profile the schema was built for (chosen at the
    first migration) and the engine serving it now."""

    profile: str  # "postgresql" | "timescaledb"
    license: str | None  # timescaledb.license, when the extension is loaded
    aggregates: str  # "rollup" (kept by the writer) | "continuous"
    server_version: int
    extension_version: str | None  # TimescaleDB loaded and in use by this database

    @property
    def engine(self) -> str:
        """``timescaledb`` when TimescaleDB serves this database, else ``postgresql``."""
        return "timescaledb" if self.extension_version else "postgresql"

    @property
    def edition(self) -> str | None:
        """The TimescaleDB edition (``community`` or ``apache``), None on plain PostgreSQL."""
        if not self.extension_version:
            return None
        return "apache" if self.license == "apache" else "community"

    def public(self) -> dict[str, Any]:
        """The JSON object for /healthz."""
        return {
            "status": "up",
            "engine": self.engine,
            "edition": self.edition,
            "profile": self.profile,
            "license": self.license,
            "aggregates": self.aggregates,
            "server_version": self.server_version,
            "timescaledb": self.extension_version,
        }


async def probe_storage(*, conn: AsyncConnection[Any]) -> StorageProfile:
    """Ask the database which layout it holds and what the server offers."""
    cur = await conn.execute(
        r"""
        SELECT l.engine, l.aggregates, current_setting('server_version_num')::int,
               (SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'
                  AND current_setting('shared_preload_libraries')
                      ~ '(^|[\s,])timescaledb($|[\s,])'),
               current_setting('timescaledb.license', true)
        FROM storage_layout l
        """
    )
    row = await cur.fetchone()
    if row is None:
        raise LookupError("storage_layout is empty: the schema was not migrated")
    engine, aggregates, version, extension, licence = row
    return StorageProfile(engine, licence if extension else None, aggregates, version, extension)


@dataclass(frozen=True, slots=True)
class Segment:
    """Part of a time range, answered from ``source`` (``raw`` or an aggregate grain)."""

    source: str
    start: dt.datetime
    end: dt.datetime


def _floor(t: dt.datetime, width: dt.timedelta) -> dt.datetime:
    return t - (t - ORIGIN) % width


def _ceil(t: dt.datetime, width: dt.timedelta) -> dt.datetime:
    floor = _floor(t, width)
    return floor if floor == t else floor + width


def aggregate_grains(codes: Sequence[tuple[str | None, str]], grains: list[str]) -> list[str]:
    """The grains whose aggregates can answer for these codes.

    The rollups and continuous aggregates hold measurements only; a NEWS2 score, which
    malestrom derives and may correct, is answered from the raw rows.
    """
    return [] if any(code == NEWS2_CODE for _, code in codes) else grains


def plan_segments(start: dt.datetime, end: dt.datetime, grains: list[str]) -> list[Segment]:
    """Split ``[start, end)`` into whole buckets of the coarsest grain, then finer, then raw.

    Args:
        start: Inclusive, timezone-aware.
        end: Exclusive, timezone-aware.
        grains: Aggregate grains allowed, coarsest first (names of `GRAINS`).
    """
    if start >= end:
        return []
    if not grains:
        return [Segment("raw", start, end)]
    width = GRAINS[grains[0]]
    lo, hi = _ceil(start, width), _floor(end, width)
    if lo >= hi:
        return plan_segments(start, end, grains[1:])
    return [
        *plan_segments(start, lo, grains[1:]),
        Segment(grains[0], lo, hi),
        *plan_segments(hi, end, grains[1:]),
    ]
