"""TimescaleDB (≥ 2.18): the only Timescale-specific SQL in malestrom.

Built from source into the embedded PostgreSQL by ``../shared/tools/build-timescaledb`` and run
by CI in both editions (``MALESTROM_TEST_ENGINE``, see tests/engines.py). What it builds:

- ``observations`` as a hypertable with daily chunks (``by_range``);
- with the Timescale licence (``timescaledb.license = 'timescale'``, the Community Edition):
  the columnstore, segmented by patient and code and ordered by time, for chunks older than 7
  days (``add_columnstore_policy``), a retention policy, and continuous aggregates
  ``observations_hourly`` / ``observations_daily`` with real-time aggregation
  (``materialized_only = false``) and refresh policies over all time (``start_offset`` NULL:
  a refresh materialises only what was invalidated, so a backfill of any age is picked up by
  the next refresh instead of falling behind the watermark for ever);
- under the Apache licence (no columnstore, policies or continuous aggregates): the same
  writer-kept rollups as plain PostgreSQL (hourly deltas, a daily view of them, compaction by
  the maintenance), and retention by ``drop_chunks``.

The relation and function names are those of the plain layout, so queries do not change.
"""

from __future__ import annotations

from typing import Any

from infra.migrations.engines.common import (
    COMPACT_ROLLUPS_SQL,
    OBSERVATION_COLUMNS,
    ROLLUP_TABLES_SQL,
    SHARED_SQL,
    execute_all,
)

__all__ = ["apply", "license_of"]

_HYPERTABLE_SQL = [
    "CREATE EXTENSION IF NOT EXISTS timescaledb",
    f"CREATE TABLE observations ({OBSERVATION_COLUMNS})",
    "SELECT create_hypertable('observations', by_range('effective', INTERVAL '1 day'))",
    *SHARED_SQL,
    # Chunks are created on insert: there is nothing to make ahead.
    """CREATE FUNCTION malestrom_ensure_partitions(from_day date, to_day date) RETURNS integer
       LANGUAGE sql AS $$ SELECT 0 $$""",
]

_MAINTAIN = f"""CREATE FUNCTION malestrom_maintain_storage() RETURNS integer
               LANGUAGE sql AS $$ {COMPACT_ROLLUPS_SQL}; SELECT malestrom_apply_retention() $$"""


def _continuous_aggregate(grain: str, width: str) -> list[str]:
    # WITH NO DATA: creating a continuous aggregate WITH DATA cannot run in a transaction block.
    # One index for the one question asked of it (patient, code, time range) instead of the
    # default index per grouping column.
    return [
        f"""CREATE MATERIALIZED VIEW observations_{grain}
        WITH (timescaledb.continuous, timescaledb.materialized_only = false,
              timescaledb.create_group_indexes = false) AS
        SELECT patient_key, code_system, code,
               time_bucket(INTERVAL '{width}', effective) AS bucket,
               count(value) AS n, sum(value) AS total, min(value) AS minimum,
               max(value) AS maximum
        FROM observations
        WHERE value IS NOT NULL
        GROUP BY patient_key, code_system, code, bucket
        WITH NO DATA""",
        f"""CREATE INDEX observations_{grain}_patient_code_bucket
            ON observations_{grain} (patient_key, code, bucket)""",
    ]


_COMMUNITY_SQL = [
    # One patient's readings lie together in the columnstore, by code and then newest first:
    # what every question asks for (one patient, a code, a time range), and what compresses
    # best. A home patient sends a few readings a day, too few for a day's segment to
    # compress (a small row is not even TOAST-compressed), so daily chunks are merged into
    # 30-day chunks as they move to the columnstore; as time is not the first ordering
    # column, TimescaleDB recompresses a chunk when a day is merged into it, and a patient's
    # month becomes one segment. Chunks merge only when their settings equal the
    # hypertable's, so the sparse indexes TimescaleDB would add to each chunk by itself (a
    # bloom filter on the primary key) are named here instead.
    """ALTER TABLE observations SET (
        timescaledb.enable_columnstore,
        timescaledb.segmentby = 'patient_key',
        timescaledb.orderby = 'code, effective DESC, id DESC',
        timescaledb.sparse_index = 'bloom(id, effective), minmax(code), minmax(effective),
                                    minmax(id)',
        timescaledb.compress_chunk_time_interval = '30 days')""",
    "CALL add_columnstore_policy('observations', after => INTERVAL '7 days')",
    """SELECT add_retention_policy('observations',
                                   drop_after => (SELECT retention FROM storage_layout))""",
    *_continuous_aggregate("hourly", "1 hour"),
    *_continuous_aggregate("daily", "1 day"),
    # Real-time aggregation answers from raw rows after the watermark (the last refresh);
    # a late reading before it counts once the next refresh has run.
    """SELECT add_continuous_aggregate_policy('observations_hourly',
        start_offset => NULL, end_offset => INTERVAL '1 hour',
        schedule_interval => INTERVAL '15 minutes')""",
    """SELECT add_continuous_aggregate_policy('observations_daily',
        start_offset => NULL, end_offset => INTERVAL '1 day',
        schedule_interval => INTERVAL '1 hour')""",
    # The retention policy runs as a background job, and continuous aggregates need no
    # compaction: nothing for the worker to do.
    """CREATE FUNCTION malestrom_apply_retention() RETURNS integer
       LANGUAGE sql AS $$ SELECT 0 $$""",
    """CREATE FUNCTION malestrom_compact_rollups(since timestamptz) RETURNS integer
       LANGUAGE sql AS $$ SELECT 0 $$""",
]

_APACHE_SQL = [
    *ROLLUP_TABLES_SQL,
    """CREATE FUNCTION malestrom_apply_retention() RETURNS integer
       LANGUAGE sql AS $$
           SELECT count(*)::integer FROM drop_chunks('observations',
               older_than => now() - (SELECT retention FROM storage_layout))
       $$""",
]


def license_of(conn: Any) -> str:
    """Return ``timescaledb.license`` (``'timescale'`` or ``'apache'``)."""
    cursor = conn.cursor()
    cursor.execute("SELECT coalesce(current_setting('timescaledb.license', true), 'apache')")
    return str(cursor.fetchone()[0])


def apply(conn: Any) -> None:
    """Create the TimescaleDB layout of ``observations`` and its helpers."""
    execute_all(conn, _HYPERTABLE_SQL[:1])
    licence = license_of(conn)
    community = licence == "timescale"
    execute_all(conn, _HYPERTABLE_SQL[1:])
    cursor = conn.cursor()
    cursor.execute(
        "INSERT INTO storage_layout (engine, license, aggregates) VALUES ('timescaledb', %s, %s)",
        (licence, "continuous" if community else "rollup"),
    )
    execute_all(conn, [*(_COMMUNITY_SQL if community else _APACHE_SQL), _MAINTAIN])
