"""The error tree of malestrom.

::

    MalestromError                      root of everything we raise on purpose
    ├── InvalidReadingError             the data is wrong: never retry, answer 4xx or dead-letter
    │   └── InvalidIdentifierError      a patient identifier fails its checks
    ├── TemplateError                   a device-mapping template is malformed (configuration)
    └── UnavailableError                a service is down or slow: retry after ``retry_after``
        ├── BrokerUnavailableError      Kafka did not acknowledge
        └── DatabaseUnavailableError    the database refused or timed out

Context (field path, patient key, topic, offset) goes in keyword attributes, never only in the
message. Messages never contain national identity numbers or measurement values.
"""

from __future__ import annotations

__all__ = [
    "BrokerUnavailableError",
    "DatabaseUnavailableError",
    "InvalidIdentifierError",
    "InvalidReadingError",
    "MalestromError",
    "TemplateError",
    "UnavailableError",
]


class MalestromError(Exception):
    """Root of the errors malestrom raises on purpose."""


class InvalidReadingError(MalestromError):
    """The input is wrong; retrying cannot help.

    Args:
        message: What is wrong, for a human who can fix the sender.
        expression: FHIRPath of the offending element, e.g. ``Observation.code``.
        code: FHIR issue type code (``invalid``, ``required``, ``value``, ``code-invalid``…).
    """

    def __init__(self, message: str, *, expression: str = "", code: str = "invalid") -> None:
        super().__init__(message)
        self.message = message
        self.expression = expression
        self.code = code


class InvalidIdentifierError(InvalidReadingError):
    """A patient identifier fails its checks (format, mod-11, deployment mode)."""


class TemplateError(MalestromError):
    """A device-mapping template cannot be loaded; fix the template file."""


class UnavailableError(MalestromError):
    """A service we depend on is unavailable; the caller should retry later.

    Args:
        message: What is unavailable.
        retry_after: Seconds after which a retry is reasonable.
    """

    def __init__(self, message: str, *, retry_after: float = 5.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BrokerUnavailableError(UnavailableError):
    """Kafka did not acknowledge a write in time."""


class DatabaseUnavailableError(UnavailableError):
    """The database is down, refused the connection or timed out."""
