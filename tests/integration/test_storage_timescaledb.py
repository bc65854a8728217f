"""TimescaleDB's own machinery, each test in a database of its own (its policies act on whole
tables): continuous aggregates refreshed, the columnstore, retention, the Apache fallback.

Each test holds on the engines its marker names and is deselected on the others; the session
is checked to be the engine ``MALESTROM_TEST_ENGINE`` names, so none can pass on the wrong one.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from infra.devissuer import DevIssuer
from streams.sinks import ObservationRow
from tests.helpers import fresh_fnr
from tests.integration.storage_helpers import (
    expected_trend,
    own_database,
    reading_client,
    refresh_aggregates,
    row,
    run_policy,
    scalar,
    trend,
    write,
)

pytestmark = pytest.mark.integration

NOW = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
DAY, HOUR = dt.timedelta(days=1), dt.timedelta(hours=1)
MIDNIGHT = NOW.replace(hour=0)  # readings placed after it stay within one daily chunk
CHUNKS = """
SELECT range_start, range_end, is_compressed FROM timescaledb_information.chunks
WHERE hypertable_name = 'observations' ORDER BY range_start
"""


@pytest.fixture
def db(database_url: str) -> Iterator[str]:
    """A migrated database of this test's own on the session's server."""
    with own_database(database_url) as url:
        yield url


def _pulses(fnr: str, start: dt.datetime, n: int, every: dt.timedelta) -> list[ObservationRow]:
    return [row(fnr, start + every * i, 50 + (i * 17) % 71) for i in range(n)]


def _answers(client: TestClient, fnr: str, start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
    """Search, $lastn, $stats and the daily and hourly trends of the patient's pulse."""
    span = {"patient.identifier": fnr, "code": "8867-4"}
    search = client.get(
        "/fhir/Observation",
        params={**span, "_count": 1000, "date": [f"ge{start.isoformat()}", f"lt{end.isoformat()}"]},
    ).json()
    lastn = client.get("/fhir/Observation/$lastn", params={**span, "max": 5}).json()
    period = f"{start.isoformat()}/{(end - dt.timedelta(seconds=1)).isoformat()}"
    stats = client.get(
        "/fhir/Observation/$stats",
        params={**span, "period": period, "statistic": "count,minimum,maximum,average"},
    ).json()
    (parameter,) = stats["parameter"]
    return {
        "search": [e["resource"]["id"] for e in search["entry"]],
        "lastn": [e["resource"]["id"] for e in lastn["entry"]],
        "stats": {
            c["code"]["coding"][0]["code"]: round(c["valueQuantity"]["value"], 9)
            for c in parameter["resource"]["component"]
        },
        "daily": trend(client, fnr, start, end, "1d"),
        "hourly": trend(client, fnr, start + 5 * HOUR + dt.timedelta(minutes=13), end, "1h"),
    }


def _truth(rows: list[ObservationRow], start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
    """The same answers, computed here from the rows written."""
    newest = sorted(rows, key=lambda r: (r.effective, r.id), reverse=True)
    values = [r.value for r in rows if start <= r.effective < end and r.value is not None]
    return {
        "search": [r.id for r in newest if start <= r.effective < end],
        "lastn": [r.id for r in newest[:5]],
        "stats": {
            "count": len(values),
            "minimum": min(values),
            "maximum": max(values),
            "average": round(statistics.fmean(values), 9),
        },
        "daily": expected_trend(rows, start, end, DAY),
        "hourly": expected_trend(rows, start + 5 * HOUR + dt.timedelta(minutes=13), end, HOUR),
    }


@pytest.mark.engine("timescaledb")
def test_a_refresh_makes_the_trends_equal_the_raw_rows(db: str, issuer: DevIssuer) -> None:
    """Trends equal the raw rows before and after a refresh; a backfill behind the watermark
    counts once the refresh policy has run again."""
    fnr, start, end = fresh_fnr(), NOW - 20 * DAY, NOW - 17 * DAY
    first = _pulses(fnr, start + dt.timedelta(minutes=7), 400, dt.timedelta(minutes=10))
    late = _pulses(fnr, start + dt.timedelta(minutes=2), 300, dt.timedelta(minutes=10))
    with reading_client(db, issuer) as client:
        write(db, first)
        assert _answers(client, fnr, start, end) == _truth(first, start, end)  # real time
        refresh_aggregates(db)
        assert _answers(client, fnr, start, end) == _truth(first, start, end)  # materialised
        write(db, late)  # a hub that was offline: behind the watermark of both aggregates
        stale, truth = _answers(client, fnr, start, end), _truth(first + late, start, end)
        assert stale["search"] == truth["search"]  # raw rows count at once
        assert stale["daily"] == _truth(first, start, end)["daily"] != truth["daily"]
        refresh_aggregates(db)
        assert _answers(client, fnr, start, end) == _truth(first + late, start, end)


@pytest.mark.engine("timescaledb")
def test_the_columnstore_policy_compresses_old_chunks_and_answers_stay_the_same(
    db: str, issuer: DevIssuer
) -> None:
    """Chunks older than 7 days move to the columnstore, newer ones stay; every question over
    them still equals the raw rows."""
    fnr, start, end = fresh_fnr(), NOW - 30 * DAY, NOW
    rows = [
        r
        for days in (30, 10, 2)
        for r in _pulses(fnr, MIDNIGHT - days * DAY + HOUR, 72, dt.timedelta(minutes=5))
    ]
    write(db, rows)
    with reading_client(db, issuer) as client:
        assert _answers(client, fnr, start, end) == _truth(rows, start, end)
        run_policy(db, "policy_compression", "observations")
        assert _compressed(db, 30, 10, 2) == {30: True, 10: True, 2: False}
        assert _answers(client, fnr, start, end) == _truth(rows, start, end)


@pytest.mark.engine("timescaledb")
def test_readings_written_into_the_columnstore_are_stored_once(db: str) -> None:
    """A late reading into a compressed chunk is stored, and a replay of compressed rows
    stores nothing twice."""
    fnr = fresh_fnr()
    rows = _pulses(fnr, MIDNIGHT - 20 * DAY, 100, dt.timedelta(minutes=5))
    write(db, rows)
    run_policy(db, "policy_compression", "observations")
    assert _compressed(db, 20) == {20: True}
    late = row(fnr, MIDNIGHT - 20 * DAY + dt.timedelta(minutes=3), 66)
    write(db, [*rows[:50], late])  # a replay of compressed rows, with one new reading
    count = "SELECT count(*) FROM observations o JOIN patients p USING (patient_key)"
    assert scalar(db, count + " WHERE p.identifier_value = %s", fnr) == 101


def _chunks(database_url: str) -> list[tuple[dt.datetime, dt.datetime, bool]]:
    """``(start, end, compressed)`` of every chunk (daily ones merge as they are compressed)."""
    import psycopg

    with psycopg.connect(database_url) as conn:
        return [(a, b, c) for a, b, c in conn.execute(CHUNKS).fetchall()]


def _compressed(database_url: str, *days_ago: int) -> dict[int, bool]:
    """Whether the chunk that holds the first hour after midnight, that many days ago, is in
    the columnstore."""
    chunks = _chunks(database_url)
    at = {n: MIDNIGHT - n * DAY + HOUR for n in days_ago}
    return {n: next(c for a, b, c in chunks if a <= t < b) for n, t in at.items()}


@pytest.mark.engine("postgresql", "timescaledb", "timescaledb-apache")
def test_retention_removes_what_is_older_than_the_retention_period(db: str, engine: str) -> None:
    """Readings beyond the retention period go (whole chunks on TimescaleDB), the rest stays."""
    fnr = fresh_fnr()
    old = MIDNIGHT.replace(year=NOW.year - 10) - 3 * DAY
    write(db, [*_pulses(fnr, old, 10, HOUR), *_pulses(fnr, MIDNIGHT - DAY, 10, HOUR)])
    if engine == "timescaledb":
        run_policy(db, "policy_retention", "observations")
    else:  # the worker's hourly maintenance applies it
        scalar(db, "SELECT malestrom_maintain_storage()")
    times = "SELECT min(effective), count(*) FROM observations o JOIN patients p USING"
    assert scalar(db, times + " (patient_key) WHERE p.identifier_value = %s", fnr) == MIDNIGHT - DAY
    assert scalar(db, "SELECT count(*) FROM observations") == 10
    if engine != "postgresql":
        assert [(a, b) for a, b, _ in _chunks(db)] == [(MIDNIGHT - DAY, MIDNIGHT)]


@pytest.mark.engine("timescaledb-apache")
def test_the_apache_edition_keeps_rollups_in_the_writer_with_the_same_answers(
    db: str, issuer: DevIssuer
) -> None:
    """Without continuous aggregates or columnstore, the writer's rollup deltas answer the
    trends, equal to the raw rows before and after maintenance compacts them."""
    assert scalar(db, "SELECT count(*) FROM timescaledb_information.continuous_aggregates") == 0
    policies = "SELECT count(*) FROM timescaledb_information.jobs WHERE hypertable_name = %s"
    assert scalar(db, policies, "observations") == 0
    assert scalar(db, "SELECT relkind FROM pg_class WHERE relname = 'observations_hourly'") == "r"
    fnr, start, end = fresh_fnr(), NOW - 3 * DAY, NOW
    rows = _pulses(fnr, start + dt.timedelta(minutes=4), 400, dt.timedelta(minutes=9))
    write(db, rows, batch=37)  # many batches: several deltas per hour bucket
    deltas = "SELECT count(*) FROM observations_hourly"
    assert scalar(db, deltas) > scalar(db, "SELECT count(DISTINCT bucket) FROM observations_hourly")
    with reading_client(db, issuer) as client:
        assert _answers(client, fnr, start, end) == _truth(rows, start, end)
        scalar(db, "SELECT malestrom_maintain_storage()")
        assert scalar(db, deltas) == scalar(
            db, "SELECT count(DISTINCT bucket) FROM observations_hourly"
        )
        assert _answers(client, fnr, start, end) == _truth(rows, start, end)
