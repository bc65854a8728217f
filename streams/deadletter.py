"""Dead letters: what failed after acceptance, with the error, the stage and the original bytes.

A dead letter keeps the original key, value and headers so that ``malestrom dlq replay`` can feed
it back to the stage's input topic after a fix.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

__all__ = ["DLQ_HEADERS", "dead_letter_headers"]

DLQ_HEADERS = (
    "dlq-error",
    "dlq-error-type",
    "dlq-stage",
    "dlq-topic",
    "dlq-partition",
    "dlq-offset",
    "dlq-failed-at",
)


def dead_letter_headers(
    *,
    error: BaseException,
    stage: str,
    topic: str,
    partition: int,
    offset: int,
    original: Mapping[str, bytes] | None = None,
    now: dt.datetime | None = None,
) -> dict[str, bytes]:
    """Headers of a dead letter: the original headers plus where and why it failed.

    The error text is the exception's message; our messages never carry identity numbers or
    measurement values.
    """
    headers = {k: v for k, v in (original or {}).items() if not k.startswith("dlq-")}
    failed_at = (now or dt.datetime.now(dt.UTC)).isoformat()
    headers.update(
        {
            "dlq-error": str(error).encode()[:2000],
            "dlq-error-type": type(error).__name__.encode(),
            "dlq-stage": stage.encode(),
            "dlq-topic": topic.encode(),
            "dlq-partition": str(partition).encode(),
            "dlq-offset": str(offset).encode(),
            "dlq-failed-at": failed_at.encode(),
        }
    )
    return headers
