"""The live alert feed's resume point: never past an event that may still commit."""

from __future__ import annotations

import asyncio
from typing import Any

from api.live import AlertFeed


def _feed(gap_wait_s: float) -> AlertFeed:
    return AlertFeed("postgresql://unused", pool=None, gap_wait_s=gap_wait_s)  # type: ignore[arg-type]


def _advance(feed: AlertFeed, after: int, delivered: set[int], since: float | None) -> Any:
    async def run() -> Any:
        return feed._advance(after, delivered, since)

    return asyncio.run(run())


def test_contiguous_events_move_the_resume_point() -> None:
    """Delivered ids right after the resume point are consumed."""
    delivered = {11, 12, 13}
    assert _advance(_feed(2.0), 10, delivered, None) == (13, None)
    assert delivered == set()


def test_a_missing_id_holds_the_resume_point() -> None:
    """Event 12 is not visible yet (its writer has not committed): the point stays at 11."""
    delivered = {11, 13}
    after, since = _advance(_feed(2.0), 10, delivered, None)
    assert after == 11
    assert since is not None
    assert delivered == {13}


def test_a_gap_older_than_the_wait_is_passed() -> None:
    """An id missing for longer than the wait (rolled back, or filtered out) is skipped."""
    delivered = {13, 14}
    assert _advance(_feed(0.0), 11, delivered, since=-1e9) == (14, None)
