"""Observations as a time series: partitions or a hypertable, rollups, latest values.

The engine decides the DDL: with TimescaleDB loadable (installed, or available and preloaded)
the layout of ``engines/timescaledb.py`` is built, else that of ``engines/postgresql.py``. No
production data existed before this migration, so ``observations`` is recreated (now with
``code_system``, and PK ``(id, effective)`` because uniqueness must include the partition key).
"""

from __future__ import annotations

from typing import Any

from yoyo import step

from infra.migrations.engines import postgresql, timescaledb
from infra.migrations.engines.common import execute_all

__depends__ = {"0001_initial"}

_TIMESCALE_LOADABLE = """
SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')
    OR (EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')
        AND current_setting('shared_preload_libraries') LIKE '%timescaledb%')
"""

_INITIAL_OBSERVATIONS = """
CREATE TABLE observations (
    id           uuid PRIMARY KEY,
    patient_key  uuid NOT NULL REFERENCES patients (patient_key),
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
    resource     jsonb NOT NULL
)"""


def _timescale_loadable(conn: Any) -> bool:
    cursor = conn.cursor()
    cursor.execute(_TIMESCALE_LOADABLE)
    return bool(cursor.fetchone()[0])


def apply_layout(conn: Any) -> None:
    """Recreate ``observations`` in the layout of the engine at hand."""
    execute_all(conn, ["DROP TABLE observations"])
    engine = timescaledb if _timescale_loadable(conn) else postgresql
    engine.apply(conn)


def rollback_layout(conn: Any) -> None:
    """Back to the layout of 0001 (every observation is lost: there were none to keep)."""
    cursor = conn.cursor()
    cursor.execute("SELECT aggregates FROM storage_layout")
    continuous = cursor.fetchone()[0] == "continuous"
    aggregates = (
        ["DROP MATERIALIZED VIEW observations_daily, observations_hourly"]
        if continuous
        else ["DROP VIEW observations_daily", "DROP TABLE observations_hourly"]
    )
    execute_all(
        conn,
        [
            "DROP FUNCTION malestrom_maintain_storage()",
            "DROP FUNCTION malestrom_apply_retention()",
            "DROP FUNCTION malestrom_ensure_partitions(date, date)",
            "DROP FUNCTION malestrom_compact_rollups(timestamptz)",
            *aggregates,
            "DROP TABLE observations_latest, storage_layout",
            "DROP TABLE observations CASCADE",
            _INITIAL_OBSERVATIONS,
            "CREATE INDEX observations_patient_time"
            " ON observations (patient_key, effective DESC, id DESC)",
            "CREATE INDEX observations_patient_code_time"
            " ON observations (patient_key, code, effective DESC)",
        ],
    )


steps = [step(apply_layout, rollback_layout)]
