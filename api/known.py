"""The `KnownIds` port over the ``observations`` table: which ids are already stored."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

__all__ = ["StoredIds"]

log = logging.getLogger(__name__)

_SQL = "SELECT id::text FROM observations WHERE id = ANY(%s::uuid[])"


class StoredIds:
    """Asks the database which ids it holds; a database that does not answer knows nothing."""

    def __init__(self, pool: AsyncConnectionPool, *, timeout: float = 0.5) -> None:
        self._pool = pool
        self._timeout = timeout

    async def known(self, ids: Sequence[str]) -> set[str]:
        """Return the stored subset of ``ids``; empty when the database is unavailable."""
        if not ids:
            return set()
        try:
            async with self._pool.connection(timeout=self._timeout) as conn:
                cur = await conn.execute(_SQL, (list(ids),))
                return {row[0] for row in await cur.fetchall()}
        except (psycopg.Error, PoolTimeout) as exc:
            # Saying 201 for a duplicate is harmless (idempotent writes); refusing is not.
            log.warning("known ids unavailable: %s", type(exc).__name__)
            return set()
