"""Edge adapter: FHIR JSON responses and the mapping from domain errors to HTTP status."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from starlette.responses import Response

from ingestion.exceptions import InvalidReadingError, UnavailableError
from ingestion.outcomes import Issue, issue_from_error, operation_outcome

__all__ = [
    "FHIR_JSON",
    "FhirResponse",
    "http_status_of",
    "invalid_response",
    "outcome_response",
    "unavailable_response",
]

FHIR_JSON = "application/fhir+json"

# FHIR issue code → HTTP status, for whole-request problems.
_STATUS_BY_CODE = {
    "too-costly": 413,
    "structure": 400,
    "invalid": 400,
    "not-supported": 415,
    "not-found": 404,
    "conflict": 409,
    "forbidden": 403,
    "login": 401,
}


class FhirResponse(Response):
    """A JSON response with the FHIR media type, serialised by orjson."""

    media_type = FHIR_JSON

    def render(self, content: Any) -> bytes:
        """Serialise the content."""
        return orjson.dumps(content)


def http_status_of(code: str) -> int:
    """Return the HTTP status for a FHIR issue code (422 for data that is well-formed but wrong)."""
    return _STATUS_BY_CODE.get(code, 422)


def outcome_response(
    status: int, issues: Iterable[Issue], headers: Mapping[str, str] | None = None
) -> FhirResponse:
    """An OperationOutcome response."""
    return FhirResponse(operation_outcome(issues), status_code=status, headers=headers)


def invalid_response(error: InvalidReadingError) -> FhirResponse:
    """The response for a whole request that is wrong."""
    return outcome_response(http_status_of(error.code), [issue_from_error(error)])


def unavailable_response(error: UnavailableError) -> FhirResponse:
    """503 with Retry-After: the sender should try again; nothing was accepted."""
    issue = Issue("error", "transient", f"{error}; nothing was stored, please retry")
    retry = str(max(1, round(error.retry_after)))
    return outcome_response(503, [issue], headers={"Retry-After": retry})
