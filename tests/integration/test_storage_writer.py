"""The batching writer against the real database: idempotent, rollups exact, nothing refused."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from psycopg_pool import AsyncConnectionPool

from ingestion.exceptions import DatabaseUnavailableError
from streams.sinks import ObservationSink
from tests.helpers import fresh_fnr
from tests.integration.storage_helpers import (
    execute,
    own_database,
    refresh_aggregates,
    row,
    scalar,
    write,
)

pytestmark = pytest.mark.integration

T0 = dt.datetime(2026, 11, 20, 6, 0, tzinfo=dt.UTC)
COUNT = """
SELECT count(*) FROM observations o JOIN patients p USING (patient_key)
WHERE p.identifier_value = %s
"""
ROLLUP = """
SELECT coalesce(sum(n), 0), sum(total), min(minimum), max(maximum) FROM observations_{grain} r
JOIN patients p USING (patient_key) WHERE p.identifier_value = %s
"""
# On TimescaleDB Community: read what a refresh materialised, leaving out the real-time part.
MATERIALIZED_ONLY = (
    "ALTER MATERIALIZED VIEW observations_{grain} SET (timescaledb.materialized_only = true)"
)
ONE_ROW_PER_BUCKET = "SELECT count(*) = count(DISTINCT bucket) FROM observations_{grain}"
RAW = """
SELECT count(value), sum(value), min(value), max(value) FROM observations o
JOIN patients p USING (patient_key) WHERE p.identifier_value = %s
"""


def _minutes(fnr: str, n: int, start: dt.datetime = T0) -> list:
    return [row(fnr, start + dt.timedelta(minutes=7 * i), 60 + i % 37) for i in range(n)]


def test_writing_twice_stores_once(database_url: str) -> None:
    """A batch written again (a replay) adds no observation, rollup count or latest row."""
    fnr = fresh_fnr()
    rows = _minutes(fnr, 300)
    write(database_url, rows)
    before = [scalar(database_url, ROLLUP.format(grain=g), fnr) for g in ("hourly", "daily")]
    write(database_url, rows, batch=77)
    assert scalar(database_url, COUNT, fnr) == 300
    assert [
        scalar(database_url, ROLLUP.format(grain=g), fnr) for g in ("hourly", "daily")
    ] == before


@pytest.mark.parametrize("grain", ["hourly", "daily"])
def test_rollups_equal_the_raw_rows(database_url: str, grain: str) -> None:
    """Count, sum, min and max of the rollups equal those of the stored rows, batch after batch."""
    fnr = fresh_fnr()
    rows = _minutes(fnr, 400)
    write(database_url, rows[:150], batch=40)
    write(database_url, rows[100:], batch=64)  # overlaps: only new rows may count
    with_values = [row(fnr, T0 + dt.timedelta(seconds=30), None)]  # no value: not in rollups
    write(database_url, with_values)
    got = list(_fetch(database_url, ROLLUP.format(grain=grain), fnr))
    raw = list(_fetch(database_url, RAW, fnr))
    assert got[0] == raw[0] == 400
    assert got[1] == pytest.approx(raw[1])
    assert got[2:] == raw[2:]


def _fetch(database_url: str, query: str, fnr: str) -> tuple:
    import psycopg

    with psycopg.connect(database_url) as conn:
        found = conn.execute(query, (fnr,)).fetchone()
        assert found is not None
        return tuple(found)


def test_latest_value_follows_the_newest_reading_not_the_last_written(database_url: str) -> None:
    """A late (older) reading written last does not replace the latest value."""
    fnr = fresh_fnr()
    newest = row(fnr, T0 + dt.timedelta(hours=5), 90)
    write(database_url, [newest])
    write(database_url, [row(fnr, T0, 50)])
    latest = scalar(
        database_url,
        "SELECT l.value FROM observations_latest l JOIN patients p USING (patient_key)"
        " WHERE p.identifier_value = %s",
        fnr,
    )
    assert latest == 90


@pytest.mark.parametrize(
    "effective",
    [
        dt.datetime(2021, 3, 4, 5, 6, tzinfo=dt.UTC),  # backfill: a partition is made on demand
        dt.datetime(1990, 1, 1, tzinfo=dt.UTC),  # beyond retention: the default partition
        dt.datetime(2099, 1, 1, tzinfo=dt.UTC),  # implausibly far ahead: the default partition
    ],
)
def test_readings_outside_the_made_partitions_are_stored(
    database_url: str, effective: dt.datetime
) -> None:
    """Readings far in the past or the future are stored, never refused."""
    fnr = fresh_fnr()
    write(database_url, [row(fnr, effective, 70)])
    assert scalar(database_url, COUNT, fnr) == 1


def test_a_database_that_is_down_raises_backpressure() -> None:
    """An unreachable database gives DatabaseUnavailableError with retry_after, not a crash."""

    async def run() -> None:
        url = "postgresql://nobody@127.0.0.1:9/none?connect_timeout=1"
        async with AsyncConnectionPool(url, min_size=0, max_size=1, open=False) as pool:
            await pool.open(wait=False)
            await ObservationSink(pool, timeout=0.5).write([row(fresh_fnr(), T0, 70)])

    with pytest.raises(DatabaseUnavailableError) as caught:
        asyncio.run(run())
    assert caught.value.retry_after > 0


@pytest.mark.engine("postgresql", "timescaledb-apache")
def test_maintenance_compacts_the_rollup_deltas(database_url: str) -> None:
    """Where the writer keeps the rollups, storage maintenance folds the hourly deltas of recent
    buckets into one row per bucket, and the rollups still equal the raw rows."""
    fnr = fresh_fnr()
    start = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
    rows = _minutes(fnr, 60, start - dt.timedelta(hours=8))
    for i in range(0, 60, 7):  # a batch per few rows: several delta rows per bucket
        write(database_url, rows[i : i + 7])
    rollup_rows = "SELECT count(*) FROM observations_hourly r JOIN patients p USING (patient_key)"
    rollup_rows += " WHERE p.identifier_value = %s"
    buckets = "SELECT count(DISTINCT bucket) FROM observations_hourly r"
    buckets += " JOIN patients p USING (patient_key) WHERE p.identifier_value = %s"
    assert scalar(database_url, rollup_rows, fnr) > scalar(database_url, buckets, fnr)
    scalar(database_url, "SELECT malestrom_maintain_storage()")
    assert scalar(database_url, rollup_rows, fnr) == scalar(database_url, buckets, fnr)
    for grain in ("hourly", "daily"):
        assert _fetch(database_url, ROLLUP.format(grain=grain), fnr) == _fetch(
            database_url, RAW, fnr
        )


@pytest.mark.engine("timescaledb")
def test_refreshed_continuous_aggregates_are_the_rollups(database_url: str) -> None:
    """On the Community edition the rollups are continuous aggregates the writer never touches:
    maintenance has nothing to compact, and once refreshed their materialised rows alone, one
    per bucket, equal the raw rows."""
    with own_database(database_url) as db:
        fnr = fresh_fnr()
        start = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
        rows = _minutes(fnr, 300, start - dt.timedelta(days=4))  # whole days before the end_offset
        for i in range(0, 300, 7):  # a batch per few rows, as for the writer-kept rollups
            write(db, rows[i : i + 7])
        assert scalar(db, "SELECT malestrom_compact_rollups(now() - interval '3 days')") == 0
        refresh_aggregates(db)
        for grain in ("hourly", "daily"):
            execute(db, MATERIALIZED_ONLY.format(grain=grain))
            assert scalar(db, ONE_ROW_PER_BUCKET.format(grain=grain)) is True
            assert _fetch(db, ROLLUP.format(grain=grain), fnr) == _fetch(db, RAW, fnr)
