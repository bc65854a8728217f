"""Storage maintenance from the worker: partitions made ahead, retention applied.

The logic lives in SQL functions defined by the migrations (``malestrom_ensure_partitions``,
``malestrom_maintain_storage``), so the worker, the migration and any operator share one
implementation; on TimescaleDB they are no-ops or apply the Apache-licence retention.
"""

from __future__ import annotations

import datetime as dt
import logging

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

__all__ = ["ensure_days", "maintain_storage"]

log = logging.getLogger(__name__)


async def maintain_storage(pool: AsyncConnectionPool, *, timeout: float = 10.0) -> int:
    """Make the partitions of the next days and drop those past retention; best effort.

    Returns:
        How many partitions were created plus dropped (0 when the database was unavailable).
    """
    try:
        async with pool.connection(timeout=timeout) as conn:
            await conn.execute("SET LOCAL lock_timeout = '5s'")
            cur = await conn.execute("SELECT malestrom_maintain_storage()")
            row = await cur.fetchone()
            return int(row[0]) if row else 0
    except (psycopg.Error, PoolTimeout) as exc:
        log.warning("storage maintenance skipped: %s", type(exc).__name__)
        return 0


async def ensure_days(
    pool: AsyncConnectionPool, first: dt.date, last: dt.date, *, timeout: float = 5.0
) -> bool:
    """Make sure the daily partitions ``first``..``last`` exist; best effort.

    A day that could not be made is not an error: its rows land in the default partition.

    Returns:
        True when the partitions exist.
    """
    try:
        async with pool.connection(timeout=timeout) as conn:
            await conn.execute("SET LOCAL lock_timeout = '2s'")
            await conn.execute("SELECT malestrom_ensure_partitions(%s, %s)", (first, last))
            return True
    except (psycopg.Error, PoolTimeout) as exc:
        log.warning("partitions not made ahead: %s", type(exc).__name__)
        return False
