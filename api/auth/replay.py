"""Seen DPoP ``jti`` values, in PostgreSQL so that every API replica refuses a replay."""

from __future__ import annotations

import hashlib
import time
from typing import Any, Protocol

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from api.auth.dpop import PROOF_WINDOW_S
from api.auth.errors import InvalidProofError
from ingestion.exceptions import UnavailableError

__all__ = ["MemoryReplayCache", "ReplayCache", "ReplayStore", "configure_replay_connection"]

_PURGE_EVERY_S = 60.0


class ReplayStore(Protocol):
    """Port: remember a proof's ``jti`` and refuse it the second time."""

    async def claim(self, *, jkt: str, jti: str, iat: float) -> None:
        """Remember ``jti`` for key ``jkt``, or raise `InvalidProofError` for a replay."""


class MemoryReplayCache:
    """The same rule in one process's memory: for tests of one API process only (replicas
    need `ReplayCache`, which the API uses)."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], float] = {}
        self._purged_at = time.monotonic()

    async def claim(self, *, jkt: str, jti: str, iat: float) -> None:
        """Remember ``jti``; refuse it when seen before within the window."""
        now = time.time()
        if time.monotonic() - self._purged_at > _PURGE_EVERY_S:
            self._purged_at = time.monotonic()
            self._seen = {k: v for k, v in self._seen.items() if v > now}
        if self._seen.get((jkt, jti), 0.0) > now:
            raise InvalidProofError("the DPoP proof's jti was used before (a replay)")
        self._seen[(jkt, jti)] = max(iat, now) + PROOF_WINDOW_S + 5


async def configure_replay_connection(conn: psycopg.AsyncConnection[Any]) -> None:
    """The replay cache's own connections: one statement each (autocommit), and not waiting
    for the WAL to reach the disk. A database crash may forget the last moment's ``jti``s, so
    a proof could be replayed within its 60 s window right after one; every other request
    is spared a disk flush (about half the checks' cost)."""
    await conn.set_autocommit(True)
    await conn.execute("SET synchronous_commit TO off")


class ReplayCache:
    """Records each proof's ``jti`` (per key) until its proof could no longer be accepted.

    Give it a pool whose connections `configure_replay_connection` set up."""

    def __init__(self, pool: AsyncConnectionPool, *, timeout_s: float = 2.0) -> None:
        self._pool = pool
        self._timeout_s = timeout_s
        self._purged_at = time.monotonic()

    async def claim(self, *, jkt: str, jti: str, iat: float) -> None:
        """Remember ``jti``; refuse it if any replica saw it within the window.

        Raises:
            InvalidProofError: the proof was used before.
            UnavailableError: the database does not answer (the request cannot be checked).
        """
        digest = hashlib.sha256(f"{jkt}\x00{jti}".encode()).digest()
        expires = max(iat, time.time()) + PROOF_WINDOW_S + 5
        try:
            async with self._pool.connection(timeout=self._timeout_s) as conn:
                cur = await conn.execute(
                    "INSERT INTO dpop_jtis (digest, expires) VALUES (%s, to_timestamp(%s)) "
                    "ON CONFLICT (digest) DO NOTHING",
                    (digest, expires),
                )
                fresh = cur.rowcount == 1
                if time.monotonic() - self._purged_at > _PURGE_EVERY_S:
                    self._purged_at = time.monotonic()
                    await conn.execute("DELETE FROM dpop_jtis WHERE expires < now()")
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise UnavailableError(
                "the replay check cannot reach the database; try again", retry_after=5
            ) from exc
        if not fresh:
            raise InvalidProofError("the DPoP proof's jti was used before (a replay)")
