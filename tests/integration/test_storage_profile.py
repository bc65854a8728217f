"""The storage layout matches the engine: TimescaleDB where it is loadable, else plain PostgreSQL.

Parametrised on the probed profile, so every check runs (none is skipped): against the embedded
PostgreSQL the plain checks run; with ``MALESTROM_TEST_DATABASE_URL`` pointing at a TimescaleDB
the hypertable, compression, retention and continuous-aggregate checks run.
"""

from __future__ import annotations

import asyncio

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from api.storage import StorageProfile, probe_storage
from streams.partitions import maintain_storage
from tests.engines import ENGINES
from tests.integration.storage_helpers import scalar

pytestmark = pytest.mark.integration

TIMESCALE_LOADED = "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')"
CHECKS: dict[str, list[str]] = {
    "postgresql": [
        "SELECT EXISTS (SELECT 1 FROM pg_partitioned_table"
        " WHERE partrelid = 'observations'::regclass)",
        "SELECT to_regclass('observations_default') IS NOT NULL",
        "SELECT to_regclass('observations_'"
        " || to_char(now() AT TIME ZONE 'UTC' + interval '7 days', 'YYYYMMDD')) IS NOT NULL",
        "SELECT EXISTS (SELECT 1 FROM pg_indexes WHERE tablename = 'observations'"
        " AND indexdef LIKE '%USING brin (effective)%')",
        "SELECT to_regclass('observations_hourly') IS NOT NULL"
        " AND to_regclass('observations_daily') IS NOT NULL",
        "SELECT aggregates = 'rollup' FROM storage_layout",
    ],
    "timescaledb": [
        "SELECT EXISTS (SELECT 1 FROM timescaledb_information.hypertables"
        " WHERE hypertable_name = 'observations')",
        "SELECT (SELECT time_interval FROM timescaledb_information.dimensions"
        " WHERE hypertable_name = 'observations') = interval '1 day'",
        # With the Timescale licence: compression, retention and two real-time aggregates.
        "SELECT license = 'apache' OR (SELECT count(*) = 2 FROM timescaledb_information.jobs"
        " WHERE hypertable_name = 'observations'"
        " AND proc_name IN ('policy_compression', 'policy_retention')) FROM storage_layout",
        "SELECT license = 'apache' OR (SELECT count(*) = 2"
        " FROM timescaledb_information.continuous_aggregates"
        " WHERE view_name IN ('observations_hourly', 'observations_daily')"
        " AND NOT materialized_only) FROM storage_layout",
        "SELECT (license = 'apache') = (aggregates = 'rollup') FROM storage_layout",
    ],
}


def _probe(database_url: str) -> StorageProfile:
    async def run() -> StorageProfile:
        async with await psycopg.AsyncConnection.connect(database_url) as conn:
            return await probe_storage(conn=conn)

    return asyncio.run(run())


@pytest.fixture(scope="module")
def profile(database_url: str) -> StorageProfile:
    """The profile the application probes at start-up, after the worker's maintenance ran
    (as it does hourly), so "partitions a week ahead" holds even across midnight."""
    asyncio.run(_maintain(database_url))
    return _probe(database_url)


async def _maintain(database_url: str) -> int:
    async with AsyncConnectionPool(database_url, min_size=1, max_size=1) as pool:
        return await maintain_storage(pool)


def test_the_profile_is_the_engine_at_hand(database_url: str, profile: StorageProfile) -> None:
    """TimescaleDB is chosen exactly when the extension is loaded, and reports its licence."""
    timescale = scalar(database_url, TIMESCALE_LOADED)
    assert profile.profile == ("timescaledb" if timescale else "postgresql")
    assert (profile.license is not None) == bool(timescale)
    assert profile.server_version >= 140000


def test_the_probe_names_the_engine_and_edition_of_the_session(
    profile: StorageProfile, engine: str
) -> None:
    """What /healthz reports is the engine and edition this session was started on."""
    assert (profile.engine, profile.edition) == (ENGINES[engine].engine, ENGINES[engine].edition)


def test_the_layout_is_that_of_the_profile(database_url: str, profile: StorageProfile) -> None:
    """Every layout property of the active profile holds (hypertable or partitions, aggregates)."""
    failing = [c for c in CHECKS[profile.profile] if scalar(database_url, c) is not True]
    assert failing == []


def test_storage_maintenance_runs_on_either_engine(database_url: str) -> None:
    """The worker's maintenance call succeeds and makes nothing twice (a second call adds none)."""
    asyncio.run(_maintain(database_url))
    assert asyncio.run(_maintain(database_url)) == 0
