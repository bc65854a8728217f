"""One log format for every malestrom process: plain lines (no terminal control codes, ever)
or, with ``MALESTROM_LOG_FORMAT=json``, one JSON object per line for a log collector.

What goes into a log is decided where it is written: never tokens, identity numbers or
measurement values.

A line repeated while a service is down (a broker restart once wrote 2,414 identical lines in a
minute) is written once per interval with a count (`RepeatFilter`, on every process's handler).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson

__all__ = ["JsonFormatter", "RepeatFilter", "configure_logging"]

_PLAIN = "%(asctime)s %(name)s %(levelname)s %(message)s"
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """A record as one JSON object: time, level, logger, message and the extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        """Serialise the record."""
        out: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        out |= {k: v for k, v in record.__dict__.items() if k not in _STANDARD}
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


class RepeatFilter(logging.Filter):
    """Let a line through once per ``interval`` seconds; the next one after the interval says
    how many identical lines were held back (``repeated N times in the last S s``).

    Lines are identical when logger, level and rendered message are; records with a traceback
    always pass. Only ``max_keys`` distinct lines are remembered (the oldest are forgotten).
    Safe on several threads at once (librdkafka logs from its own threads).
    """

    def __init__(
        self,
        interval: float = 30.0,
        *,
        max_keys: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._interval = interval
        self._max_keys = max_keys
        self._clock = clock
        self._seen: dict[tuple[str, int, str], tuple[float, int]] = {}  # -> (shown at, held)
        self._lock = threading.Lock()  # two threads must not both forget the same oldest line

    def filter(self, record: logging.LogRecord) -> bool:
        """Pass the record (perhaps with a count added) or hold it back."""
        if record.exc_info:
            return True
        message = record.getMessage()
        key = (record.name, record.levelno, message)
        with self._lock:
            now = self._clock()
            shown = self._seen.get(key)
            if shown is not None and now - shown[0] < self._interval:
                self._seen[key] = (shown[0], shown[1] + 1)
                return False
            self._seen.pop(key, None)  # re-inserted last: the dict stays in order of showing
            self._seen[key] = (now, 0)
            if len(self._seen) > self._max_keys:
                del self._seen[next(iter(self._seen))]
        if shown is not None and shown[1]:
            record.msg = f"{message} (repeated {shown[1]} times in the last {now - shown[0]:.0f} s)"
            record.args = ()
        return True


def configure_logging(level: int = logging.WARNING) -> None:
    """Send every logger (uvicorn's included) through one handler in the chosen format."""
    handler = logging.StreamHandler()
    json_format = os.environ.get("MALESTROM_LOG_FORMAT", "plain").lower() == "json"
    handler.setFormatter(JsonFormatter() if json_format else logging.Formatter(_PLAIN))
    handler.addFilter(RepeatFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    logging.getLogger("malestrom.requests").setLevel(logging.INFO)
