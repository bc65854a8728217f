"""DDL shared by both engines: the observations columns, the latest-value and rollup tables."""

from __future__ import annotations

from typing import Any

__all__ = [
    "COMPACT_ROLLUPS_SQL",
    "OBSERVATION_COLUMNS",
    "ROLLUP_TABLES_SQL",
    "SHARED_SQL",
    "compact_rollups_sql",
    "execute_all",
    "rollup_relations_sql",
]

# Uniqueness with time partitioning must include the partition key: PK (id, effective). A resend
# carries the same deterministic id and the same effective time, so it still conflicts.
OBSERVATION_COLUMNS = """
    id           uuid NOT NULL,              -- deterministic: replays merge
    patient_key  uuid NOT NULL REFERENCES patients (patient_key),
    code_system  text NOT NULL DEFAULT 'http://loinc.org',
    code         text NOT NULL,
    effective    timestamptz NOT NULL,
    value        double precision,
    unit         text,
    components   jsonb,
    device       text,
    source       text NOT NULL,
    organisation text,
    received     timestamptz NOT NULL,
    stored       timestamptz NOT NULL DEFAULT now(),
    resource     jsonb NOT NULL,             -- the normalised FHIR Observation
    PRIMARY KEY (id, effective)
"""

SHARED_SQL = [
    # "patient + code, newest first" ($lastn, code searches) and "patient, newest first".
    """CREATE INDEX observations_patient_code_time
       ON observations (patient_key, code, effective DESC, id DESC)""",
    """CREATE INDEX observations_patient_time
       ON observations (patient_key, effective DESC, id DESC)""",
    # Kept by the writer on both engines, in the transaction of the insert.
    """CREATE TABLE observations_latest (
        patient_key uuid NOT NULL,
        code_system text NOT NULL,
        code        text NOT NULL,
        effective   timestamptz NOT NULL,
        id          uuid NOT NULL,
        value       double precision,
        unit        text,
        PRIMARY KEY (patient_key, code, code_system)
    )""",
    # What the schema was built for; read by the writer and reported by /healthz.
    """CREATE TABLE storage_layout (
        singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
        engine     text NOT NULL CHECK (engine IN ('postgresql', 'timescaledb')),
        license    text,
        aggregates text NOT NULL CHECK (aggregates IN ('rollup', 'continuous')),
        retention  interval NOT NULL DEFAULT interval '10 years',
        ahead_days integer NOT NULL DEFAULT 7
    )""",
]

# Rollups kept incrementally by the writer (plain PostgreSQL, or TimescaleDB under the Apache
# licence, which has no continuous aggregates). Buckets are UTC-aligned (date_bin from 2000-01-01).
# An append is far cheaper than an upsert, so the writer appends one delta row per hour bucket
# and batch, readers sum n and total and take min and max per bucket, and the storage maintenance
# folds the recent deltas of a bucket into one row (malestrom_compact_rollups). Keeping one grain
# halves the writer's rollup work: ``observations_daily`` is a view of the hourly rows, whose
# buckets lie inside whole days, so a reader that bins them by day (as every reader does) gets
# the daily aggregate, and a range of whole days still uses the hourly index.
def rollup_relations_sql(hourly: str, daily: str) -> list[str]:
    """The append-only table of hourly deltas ``hourly``, its indexes, and the daily view."""
    return [
        f"""CREATE TABLE {hourly} (
            patient_key uuid NOT NULL,
            code_system text NOT NULL,
            code        text NOT NULL,
            bucket      timestamptz NOT NULL,
            n           bigint NOT NULL,
            total       double precision NOT NULL,
            minimum     double precision NOT NULL,
            maximum     double precision NOT NULL
        )""",
        f"CREATE INDEX {hourly}_patient_code_bucket ON {hourly} (patient_key, code, bucket)",
        # For the compaction of recent buckets; nearly free to keep on an append-only table.
        f"CREATE INDEX {hourly}_bucket_brin ON {hourly} USING brin (bucket)",
        f"""CREATE VIEW {daily} AS
           SELECT patient_key, code_system, code, bucket, n, total, minimum, maximum
           FROM {hourly}""",
    ]


def compact_rollups_sql(tables: list[str]) -> str:
    """``malestrom_compact_rollups(since)``: the deltas of each bucket since ``since`` folded
    into one row, in each of the ``tables`` of hourly deltas; returns the rows written."""
    ctes = ", ".join(
        f"""folded{i} AS (
           DELETE FROM {table}
           WHERE bucket >= since AND (patient_key, code, bucket, code_system) IN (
               SELECT patient_key, code, bucket, code_system FROM {table}
               WHERE bucket >= since GROUP BY 1, 2, 3, 4 HAVING count(*) > 1)
           RETURNING *
       ), compacted{i} AS (
           INSERT INTO {table}
           SELECT patient_key, code_system, code, bucket, sum(n), sum(total), min(minimum),
                  max(maximum)
           FROM folded{i} GROUP BY 1, 2, 3, 4
           RETURNING 1
       )"""
        for i, table in enumerate(tables)
    )
    counts = " + ".join(f"(SELECT count(*)::integer FROM compacted{i})" for i in range(len(tables)))
    return f"""CREATE OR REPLACE FUNCTION malestrom_compact_rollups(since timestamptz)
       RETURNS integer LANGUAGE sql AS $$ WITH {ctes} SELECT {counts} $$"""


ROLLUP_TABLES_SQL = [
    *rollup_relations_sql("observations_hourly", "observations_daily"),
    compact_rollups_sql(["observations_hourly"]),
]

# The hourly storage maintenance compacts the rollup deltas of the last days; older deltas (a
# late backfill) stay as they are, which readers handle all the same.
COMPACT_ROLLUPS_SQL = "SELECT malestrom_compact_rollups(now() - interval '3 days')"


def execute_all(conn: Any, statements: list[str]) -> None:
    """Run each statement on a yoyo (DB-API) connection."""
    cursor = conn.cursor()
    for statement in statements:
        cursor.execute(statement)
