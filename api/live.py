"""The live alert feed: PostgreSQL ``LISTEN`` wakes every subscriber the moment an alert event
is committed; each subscriber then reads the events after its own resume point, so a client
that reconnects with ``Last-Event-ID`` misses nothing. A slow poll backs the listener up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from api import alerting

__all__ = ["AlertFeed"]

log = logging.getLogger(__name__)
_CHANNEL = "malestrom_alert_events"


class AlertFeed:
    """Fans committed alert events out to live subscribers."""

    def __init__(
        self,
        database_url: str,
        pool: AsyncConnectionPool,
        *,
        poll_s: float = 2.0,
        gap_wait_s: float = 2.0,
    ) -> None:
        self._url = database_url
        self._pool = pool
        self._poll_s = poll_s
        self._gap_wait_s = gap_wait_s
        self._wakers: set[asyncio.Event] = set()
        self._task: asyncio.Task[None] | None = None

    @property
    def subscribers(self) -> int:
        """How many live streams are open now."""
        return len(self._wakers)

    def start(self) -> None:
        """Start listening in the background."""
        self._task = asyncio.create_task(self._listen(), name="alert-feed-listen")

    async def stop(self) -> None:
        """Stop listening."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _listen(self) -> None:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._url, autocommit=True
                ) as conn:
                    await conn.execute(f"LISTEN {_CHANNEL}")
                    async for _ in conn.notifies():
                        self._wake_all()
            except psycopg.OperationalError as exc:
                log.warning("alert feed listener lost the database: %s", type(exc).__name__)
                await asyncio.sleep(1.0)

    def _wake_all(self) -> None:
        for waker in self._wakers:
            waker.set()

    async def events(
        self, *, after: int, organisations: Sequence[str] | None
    ) -> AsyncIterator[dict[str, Any]]:
        """Yield alert events with ids above ``after``, then new ones as they are committed.

        Ids are taken when an event is inserted but become visible when it commits, so a lower
        id can appear after a higher one when two writers race. The resume point therefore only
        moves past a missing id once it has stayed missing for ``gap_wait_s`` (an id that never
        appears belongs to a rolled-back insert or, with a filter, to another organisation).
        """
        waker = asyncio.Event()
        self._wakers.add(waker)
        delivered: set[int] = set()
        gap_since: float | None = None
        try:
            while True:
                waker.clear()
                async with self._pool.connection() as conn:
                    rows = await alerting.alert_events_after(
                        conn=conn, after=after, organisations=organisations, skip=sorted(delivered)
                    )
                for row in rows:
                    delivered.add(row["event_id"])
                    yield row
                after, gap_since = self._advance(after, delivered, gap_since)
                if not rows:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(waker.wait(), self._poll_s)
        finally:
            self._wakers.discard(waker)

    def _advance(
        self, after: int, delivered: set[int], gap_since: float | None
    ) -> tuple[int, float | None]:
        """Move the resume point over delivered ids, and over a gap older than the wait."""
        now = asyncio.get_running_loop().time()
        while delivered:
            if after + 1 in delivered:
                after += 1
                delivered.discard(after)
                gap_since = None
            elif gap_since is None:
                return after, now
            elif now - gap_since >= self._gap_wait_s:
                after, gap_since = min(delivered) - 1, None
            else:
                return after, gap_since
        return after, None
