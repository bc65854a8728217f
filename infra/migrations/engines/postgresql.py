"""Plain PostgreSQL ≥ 14: daily range partitions made ahead by the application, a default
partition so nothing is ever refused, BRIN on time, rollup deltas appended by the writer, retention
by dropping whole partitions. Partition logic lives in SQL functions, so the worker and the
migration share one implementation."""

from __future__ import annotations

from typing import Any

from infra.migrations.engines.common import (
    COMPACT_ROLLUPS_SQL,
    OBSERVATION_COLUMNS,
    ROLLUP_TABLES_SQL,
    SHARED_SQL,
    execute_all,
)

__all__ = ["apply"]

_ENSURE_PARTITIONS = r"""
CREATE FUNCTION malestrom_ensure_partitions(from_day date, to_day date) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    day     date;
    name    text;
    lo      timestamptz;
    hi      timestamptz;
    created integer := 0;
BEGIN
    -- One maker at a time: two workers racing for the same day would collide on the name.
    PERFORM pg_advisory_xact_lock(hashtext('malestrom_ensure_partitions'));
    FOR day IN SELECT d::date FROM generate_series(from_day, to_day, interval '1 day') AS d LOOP
        name := 'observations_' || to_char(day, 'YYYYMMDD');
        CONTINUE WHEN to_regclass(name) IS NOT NULL;
        lo := day::timestamp AT TIME ZONE 'UTC';
        hi := (day + 1)::timestamp AT TIME ZONE 'UTC';
        -- Rows of that day already in the default partition move into the new one.
        CREATE TEMP TABLE IF NOT EXISTS malestrom_moving (LIKE observations) ON COMMIT DROP;
        WITH moved AS (
            DELETE FROM observations_default WHERE effective >= lo AND effective < hi RETURNING *
        ) INSERT INTO malestrom_moving SELECT * FROM moved;
        EXECUTE format('CREATE TABLE %I PARTITION OF observations FOR VALUES FROM (%L) TO (%L)',
                       name, lo, hi);
        INSERT INTO observations SELECT * FROM malestrom_moving;
        TRUNCATE malestrom_moving;
        created := created + 1;
    END LOOP;
    RETURN created;
END $$
"""

_APPLY_RETENTION = r"""
CREATE FUNCTION malestrom_apply_retention() RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    cutoff  date;
    part    record;
    dropped integer := 0;
BEGIN
    SELECT ((now() - retention) AT TIME ZONE 'UTC')::date INTO cutoff FROM storage_layout;
    FOR part IN
        SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'observations'::regclass AND c.relname ~ '^observations_[0-9]{8}$'
          AND to_date(substr(c.relname, 14), 'YYYYMMDD') < cutoff
    LOOP
        EXECUTE format('DROP TABLE %I', part.relname);
        dropped := dropped + 1;
    END LOOP;
    DELETE FROM observations_default WHERE effective < cutoff::timestamp AT TIME ZONE 'UTC';
    RETURN dropped;
END $$
"""

_MAINTAIN = f"""
CREATE FUNCTION malestrom_maintain_storage() RETURNS integer
LANGUAGE sql AS $$
    {COMPACT_ROLLUPS_SQL};
    SELECT malestrom_ensure_partitions(
               (now() AT TIME ZONE 'UTC')::date - 1,
               (now() AT TIME ZONE 'UTC')::date + (SELECT ahead_days FROM storage_layout))
           + malestrom_apply_retention()
$$
"""

LAYOUT_SQL = [
    f"CREATE TABLE observations ({OBSERVATION_COLUMNS}) PARTITION BY RANGE (effective)",
    "CREATE TABLE observations_default PARTITION OF observations DEFAULT",
    "CREATE INDEX observations_effective_brin ON observations USING brin (effective)",
    *SHARED_SQL,
    *ROLLUP_TABLES_SQL,
    "INSERT INTO storage_layout (engine, aggregates) VALUES ('postgresql', 'rollup')",
    _ENSURE_PARTITIONS,
    _APPLY_RETENTION,
    _MAINTAIN,
    # A window around now at migration time; the worker keeps it moving.
    "SELECT malestrom_ensure_partitions((now() AT TIME ZONE 'UTC')::date - 7,"
    " (now() AT TIME ZONE 'UTC')::date + 7)",
]



def apply(conn: Any) -> None:
    """Create the plain-PostgreSQL layout of ``observations`` and its helpers."""
    execute_all(conn, LAYOUT_SQL)
