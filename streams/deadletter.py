"""Dead letters: what failed after acceptance, with the error, the stage and the original bytes.

A dead letter keeps the original key, value and headers so that ``malestrom dlq replay`` can feed
it back to the stage's input topic after a fix.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import orjson
import psycopg

from ingestion.exceptions import MalestromError

__all__ = ["DLQ_HEADERS", "dead_letter_headers", "reason"]

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
    """Headers of a dead letter: the original headers plus where and why it failed (`reason`:
    never the record's content)."""
    headers = {k: v for k, v in (original or {}).items() if not k.startswith("dlq-")}
    failed_at = (now or dt.datetime.now(dt.UTC)).isoformat()
    headers.update(
        {
            "dlq-error": reason(error).encode()[:2000],
            "dlq-error-type": type(error).__name__.encode(),
            "dlq-stage": stage.encode(),
            "dlq-topic": topic.encode(),
            "dlq-partition": str(partition).encode(),
            "dlq-offset": str(offset).encode(),
            "dlq-failed-at": failed_at.encode(),
        }
    )
    return headers


def reason(error: BaseException) -> str:
    """Why a record failed, in words that never carry its content.

    Our own errors say what is wrong without identity numbers or values. A database error's
    message often quotes the offending value (``invalid input syntax …: "…"``, a DETAIL with the
    key), so only its SQLSTATE and condition are kept; a JSON decoding error gives a position
    only. Any other error is named by its type: its message may hold anything.
    """
    if isinstance(error, MalestromError | orjson.JSONDecodeError):
        return str(error)
    if isinstance(error, psycopg.Error):
        return f"database error {error.sqlstate or 'without SQLSTATE'} ({type(error).__name__})"
    return f"{type(error).__name__} (its message is not kept: it may quote the record)"
