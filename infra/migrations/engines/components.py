"""The rollups of panel components (migration 0014): blood pressure's systolic and diastolic.

Readers ask ``observation_components_hourly`` and ``observation_components_daily``: rows of
``(patient_key, code_system, code, bucket, n, total, minimum, maximum)`` whose ``code`` is the
component's (8480-6, 8462-4), summed per bucket as readers sum the rollups of whole readings.

- Where the writer keeps the rollups (plain PostgreSQL, TimescaleDB Apache): an append-only
  table of hourly deltas, a daily view of it, and ``malestrom_compact_rollups`` folds these
  deltas as it folds those of ``observations_hourly``.
- On TimescaleDB Community: a continuous aggregate cannot turn one reading into two rows, so
  ``observation_panels_hourly`` / ``_daily`` aggregate both columns of each panel side by side
  (with real-time aggregation and refresh policies like the others), and the two relations
  readers ask are views that give each component its own row.
"""

from __future__ import annotations

from typing import Any

from infra.migrations.engines.common import (
    compact_rollups_sql,
    execute_all,
    rollup_relations_sql,
)

__all__ = ["apply", "rollback"]

_PANEL = "85354-9"
_COMPONENTS = (("8480-6", "systolic"), ("8462-4", "diastolic"))

_ROLLUP_SQL = [
    *rollup_relations_sql("observation_components_hourly", "observation_components_daily"),
    # Readings stored before this migration.
    f"""INSERT INTO observation_components_hourly
       SELECT o.patient_key, 'http://loinc.org', c.code,
              date_bin(interval '1 hour', o.effective, timestamptz '2000-01-01 00:00:00+00'),
              count(*), sum(c.v), min(c.v), max(c.v)
       FROM observations o
       CROSS JOIN LATERAL (VALUES {", ".join(f"('{code}', o.{col})" for code, col in _COMPONENTS)})
           AS c(code, v)
       WHERE o.code = '{_PANEL}' AND c.v IS NOT NULL
       GROUP BY 1, 2, 3, 4""",
    compact_rollups_sql(["observations_hourly", "observation_components_hourly"]),
]


def _panel_aggregate(grain: str, width: str) -> list[str]:
    # As the aggregates of 0002: WITH NO DATA (a refresh cannot run in a transaction block),
    # real-time aggregation, one index for the one question asked of it.
    sums = ",\n".join(
        f"count({col}) AS {col}_n, sum({col}) AS {col}_total, min({col}) AS {col}_minimum,"
        f" max({col}) AS {col}_maximum"
        for _, col in _COMPONENTS
    )
    unpivot = "\nUNION ALL\n".join(
        f"""SELECT patient_key, 'http://loinc.org'::text AS code_system, '{code}'::text AS code,
               bucket, {col}_n AS n, {col}_total AS total, {col}_minimum AS minimum,
               {col}_maximum AS maximum
        FROM observation_panels_{grain} WHERE {col}_n > 0"""
        for code, col in _COMPONENTS
    )
    return [
        f"""CREATE MATERIALIZED VIEW observation_panels_{grain}
        WITH (timescaledb.continuous, timescaledb.materialized_only = false,
              timescaledb.create_group_indexes = false) AS
        SELECT patient_key, time_bucket(INTERVAL '{width}', effective) AS bucket, {sums}
        FROM observations
        WHERE code = '{_PANEL}'
        GROUP BY patient_key, bucket
        WITH NO DATA""",
        f"""CREATE INDEX observation_panels_{grain}_patient_bucket
            ON observation_panels_{grain} (patient_key, bucket)""",
        f"CREATE VIEW observation_components_{grain} AS {unpivot}",
    ]


_CONTINUOUS_SQL = [
    *_panel_aggregate("hourly", "1 hour"),
    *_panel_aggregate("daily", "1 day"),
    """SELECT add_continuous_aggregate_policy('observation_panels_hourly',
        start_offset => NULL, end_offset => INTERVAL '1 hour',
        schedule_interval => INTERVAL '15 minutes')""",
    """SELECT add_continuous_aggregate_policy('observation_panels_daily',
        start_offset => NULL, end_offset => INTERVAL '1 day',
        schedule_interval => INTERVAL '1 hour')""",
]


def _continuous(conn: Any) -> bool:
    cursor = conn.cursor()
    cursor.execute("SELECT aggregates FROM storage_layout")
    return bool(cursor.fetchone()[0] == "continuous")


def apply(conn: Any) -> None:
    """Create the component rollups of the database's storage profile."""
    execute_all(conn, _CONTINUOUS_SQL if _continuous(conn) else _ROLLUP_SQL)


def rollback(conn: Any) -> None:
    """Drop them (and give back the compaction of 0002)."""
    if _continuous(conn):
        execute_all(
            conn,
            [
                "DROP VIEW observation_components_daily, observation_components_hourly",
                "DROP MATERIALIZED VIEW observation_panels_daily",
                "DROP MATERIALIZED VIEW observation_panels_hourly",
            ],
        )
        return
    execute_all(
        conn,
        [
            compact_rollups_sql(["observations_hourly"]),
            "DROP VIEW observation_components_daily",
            "DROP TABLE observation_components_hourly",
        ],
    )
