"""When `malestrom up` restarts a child that died, and when it gives up: a pure policy.

The delay doubles with each crash in a row (1, 2, 4, … s, capped); a child that ran stably for
``stable_after`` seconds before it died starts again from the shortest delay. A child that
crashed ``limit`` times within ``window`` seconds keeps crashing: the supervisor gives up.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

__all__ = ["RestartPolicy", "Verdict"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """What to do about one crash: restart after ``delay`` seconds, or give up."""

    give_up: bool
    delay: float
    crashes_in_window: int


@dataclass(slots=True)
class RestartPolicy:
    """The back-off state of one supervised child; call `started` and `crashed` as they happen."""

    limit: int = 5
    window: float = 300.0
    stable_after: float = 60.0
    first_delay: float = 1.0
    max_delay: float = 30.0
    _crashes: deque[float] = field(default_factory=deque)
    _in_a_row: int = 0
    _started_at: float | None = None

    def started(self, now: float) -> None:
        """The child was (re)started at ``now`` (monotonic seconds)."""
        self._started_at = now

    def crashed(self, now: float) -> Verdict:
        """The child died at ``now``: restart it after a delay, or give up."""
        if self._started_at is not None and now - self._started_at >= self.stable_after:
            self._in_a_row = 0
        self._in_a_row += 1
        self._crashes.append(now)
        while self._crashes and now - self._crashes[0] > self.window:
            self._crashes.popleft()
        delay = min(self.max_delay, self.first_delay * 2 ** (self._in_a_row - 1))
        return Verdict(len(self._crashes) >= self.limit, delay, len(self._crashes))
