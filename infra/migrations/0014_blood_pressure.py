"""Blood pressure everywhere: the diastolic component as a typed column beside the systolic one
(0011), and rollups of both components, so that trends and ``$stats`` answer for 8480-6 and
8462-4 (and the 85354-9 panel) from aggregates as they do for whole readings. The DDL that
depends on the storage profile is in ``engines/components.py``.
"""

from __future__ import annotations

from typing import Any

from yoyo import step

from infra.migrations.engines import components
from infra.migrations.engines.common import execute_all

__depends__ = {"0011_news2_inputs", "0013_web_sessions"}

# One statement each: TimescaleDB allows ADD COLUMN (nullable, no default) on a hypertable, also
# with compression enabled; on plain PostgreSQL the partitions inherit it.
_COLUMN_SQL = [
    "ALTER TABLE observations ADD COLUMN diastolic double precision",
    # Readings stored before this migration (the systolic column was filled by 0011, but a
    # panel stored by an import path that left it empty gets it here too). The LOINC coding is
    # matched wherever it stands among a component's codings, as the writer does.
    """UPDATE observations SET
        systolic = coalesce(systolic, (
            SELECT (c #>> '{valueQuantity,value}')::float8
            FROM jsonb_array_elements(resource -> 'component') c
            WHERE c -> 'code' -> 'coding' @> '[{"system": "http://loinc.org", "code": "8480-6"}]'
            LIMIT 1)),
        diastolic = (
            SELECT (c #>> '{valueQuantity,value}')::float8
            FROM jsonb_array_elements(resource -> 'component') c
            WHERE c -> 'code' -> 'coding' @> '[{"system": "http://loinc.org", "code": "8462-4"}]'
            LIMIT 1)
    WHERE code = '85354-9'""",
]


def apply_step(conn: Any) -> None:
    """The column, then the rollups of the database's profile."""
    execute_all(conn, _COLUMN_SQL)
    components.apply(conn)


def rollback_step(conn: Any) -> None:
    """The rollups, then the column."""
    components.rollback(conn)
    execute_all(conn, ["ALTER TABLE observations DROP COLUMN diastolic"])


steps = [step(apply_step, rollback_step)]
