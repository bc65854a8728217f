"""One log format for every malestrom process: plain lines (no terminal control codes, ever)
or, with ``MALESTROM_LOG_FORMAT=json``, one JSON object per line for a log collector.

What goes into a log is decided where it is written: never tokens, identity numbers or
measurement values.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from typing import Any

import orjson

__all__ = ["JsonFormatter", "configure_logging"]

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


def configure_logging(level: int = logging.WARNING) -> None:
    """Send every logger (uvicorn's included) through one handler in the chosen format."""
    handler = logging.StreamHandler()
    json_format = os.environ.get("MALESTROM_LOG_FORMAT", "plain").lower() == "json"
    handler.setFormatter(JsonFormatter() if json_format else logging.Formatter(_PLAIN))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    logging.getLogger("malestrom.requests").setLevel(logging.INFO)
