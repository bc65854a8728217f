"""DDL shared by both engines: the observations columns, the latest-value and rollup tables."""

from __future__ import annotations

from typing import Any

__all__ = ["OBSERVATION_COLUMNS", "ROLLUP_TABLES_SQL", "SHARED_SQL", "execute_all"]

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

# Hourly and daily rollups kept incrementally by the writer (plain PostgreSQL, or TimescaleDB
# under the Apache licence, which has no continuous aggregates). Buckets are UTC-aligned.
ROLLUP_TABLES_SQL = [
    f"""CREATE TABLE observations_{grain} (
        patient_key uuid NOT NULL,
        code_system text NOT NULL,
        code        text NOT NULL,
        bucket      timestamptz NOT NULL,
        n           bigint NOT NULL,
        total       double precision NOT NULL,
        minimum     double precision NOT NULL,
        maximum     double precision NOT NULL,
        PRIMARY KEY (patient_key, code, bucket, code_system)
    )"""
    for grain in ("hourly", "daily")
]


def execute_all(conn: Any, statements: list[str]) -> None:
    """Run each statement on a yoyo (DB-API) connection."""
    cursor = conn.cursor()
    for statement in statements:
        cursor.execute(statement)
