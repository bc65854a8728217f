"""The store-backed ports of the receiver: `StoredIds` (which ids are already stored) and
`StoredCustody` (which organisations hold data about which patients)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

__all__ = ["StoredCustody", "StoredIds"]

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


class StoredCustody:
    """Notes in ``patient_organisations`` which organisation's systems sent whose readings,
    registering an organisation number on first use. Pairs already noted by this process are
    not written again."""

    def __init__(self, pool: AsyncConnectionPool, *, timeout: float = 2.0) -> None:
        self._pool = pool
        self._timeout = timeout
        self._noted: set[tuple[str, str]] = set()

    async def record(self, pairs: set[tuple[str, str]]) -> None:
        """Record the new pairs (best effort: the reading is accepted even when this fails)."""
        new = sorted(pairs - self._noted)
        if not new:
            return
        try:
            async with self._pool.connection(timeout=self._timeout) as conn:
                await register_organisations(conn=conn, numbers={o for _, o in new}, by="ingest")
                async with conn.cursor() as cur:
                    await cur.executemany(
                        "INSERT INTO patient_organisations (patient_key, organisation) "
                        "VALUES (%s, %s) ON CONFLICT DO NOTHING",
                        new,
                    )
        except (psycopg.Error, PoolTimeout) as exc:
            # The reading itself is safe in Kafka; only the organisation's view of it waits
            # for the next reading of the same patient.
            log.warning("patient organisations not recorded: %s", type(exc).__name__)
            return
        self._noted.update(new)
        if len(self._noted) > 500_000:
            self._noted.clear()


async def register_organisations(*, conn: Any, numbers: set[str], by: str) -> None:
    """Register organisation numbers malestrom has not seen (NEWS2 defaults, no name yet)."""
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO organisations (org_id, updated_by, updated_at) VALUES (%s, %s, now()) "
            "ON CONFLICT (org_id) DO NOTHING",
            [(n, by) for n in sorted(numbers)],
        )
