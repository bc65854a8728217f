"""Which observation ids malestrom already has: so that a resend answers ``200 OK``, not ``201``.

Only the store can say (`KnownIds`, which the API implements against the ``observations``
table). An id this process merely published is not "known": the broker may lose it (the
embedded one keeps data in memory only), and a resend is the sender's only remedy, so a resend
of anything not yet stored is published again; storage is idempotent, nothing is stored twice.
A store that does not answer is treated as knowing nothing, for the same reason: ingestion never
waits for the database.

`RecentIds` remembers what this process accepted, so that a read of a just-accepted id can wait
for its storage instead of answering 404.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Protocol

__all__ = ["Custody", "KnownIds", "RecentIds"]


class KnownIds(Protocol):
    """Port: the ids among ``ids`` that are already stored."""

    async def known(self, ids: Sequence[str]) -> set[str]:
        """Return the subset of ``ids`` already stored (empty when the store cannot say)."""


class Custody(Protocol):
    """Port: note that an organisation holds data about patients (pairs of key and org)."""

    async def record(self, pairs: set[tuple[str, str]]) -> None:
        """Record ``(patient_key, organisation number)`` pairs; idempotent."""


class RecentIds:
    """A bounded memory of recently accepted ids (least recently added forgotten first)."""

    def __init__(self, capacity: int = 200_000) -> None:
        self._capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()

    def add(self, ids: Iterable[str]) -> None:
        """Remember ids that the broker acknowledged."""
        for one in ids:
            self._ids[one] = None
            self._ids.move_to_end(one)
        while len(self._ids) > self._capacity:
            self._ids.popitem(last=False)

    def known(self, ids: Iterable[str]) -> set[str]:
        """Return those of ``ids`` remembered."""
        return {one for one in ids if one in self._ids}
