"""Edge adapter: the HTTP receiver for FHIR readings (``POST /fhir``, ``POST /fhir/Observation``).

Thin by design: read and check the request, call the pure parser, publish what passed, answer.
The answer is 2xx only after the broker acknowledged every accepted entry.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from http import HTTPStatus
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from ingestion.bundles import EntryResult, ParsedBundle, parse_bundle
from ingestion.exceptions import InvalidReadingError, UnavailableError
from ingestion.identifiers import IdentityMode
from ingestion.measurement import Measurement, to_json
from ingestion.observations import parse_observation
from ingestion.outcomes import Issue, operation_outcome
from ingestion.publisher import Publisher, Record
from ingestion.responses import (
    FhirResponse,
    http_status_of,
    invalid_response,
    outcome_response,
    unavailable_response,
)
from ingestion.topics import Topics

__all__ = ["CORRELATION_HEADER", "MAX_BODY_BYTES", "Receiver", "router"]

MAX_BODY_BYTES = 1024 * 1024
CORRELATION_HEADER = "correlation-id"
_JSON_TYPES = ("application/fhir+json", "application/json")


@dataclass(frozen=True, slots=True)
class Receiver:
    """What the receiver needs: where to publish, and which identities to accept."""

    publisher: Publisher
    topics: Topics
    mode: IdentityMode


def get_receiver(request: Request) -> Receiver:
    """Dependency: the receiver the composition root placed on the app."""
    receiver: Receiver = request.app.state.receiver
    return receiver


ReceiverDep = Annotated[Receiver, Depends(get_receiver)]
router = APIRouter(tags=["ingestion"])


@router.post("/fhir")
async def post_bundle(request: Request, receiver: ReceiverDep) -> Response:
    """Accept a Bundle (collection, batch or transaction) of Observations."""
    correlation = request.headers.get(CORRELATION_HEADER) or str(uuid.uuid4())
    headers = {CORRELATION_HEADER: correlation}
    try:
        body = await _read_json(request)
        parsed = parse_bundle(body, received=_now(), mode=receiver.mode)
        if parsed.type == "transaction" and any(e.issues for e in parsed.entries):
            issues = [i for e in parsed.entries for i in e.issues]
            return outcome_response(422, issues, headers)
        await _publish(receiver, parsed.measurements, correlation)
    except InvalidReadingError as exc:
        return _with_headers(invalid_response(exc), headers)
    except UnavailableError as exc:
        return _with_headers(unavailable_response(exc), headers)
    return FhirResponse(_bundle_response(parsed), headers=headers)


@router.post("/fhir/Observation")
async def post_observation(request: Request, receiver: ReceiverDep) -> Response:
    """Accept one Observation: 201 with Location, or an OperationOutcome."""
    correlation = request.headers.get(CORRELATION_HEADER) or str(uuid.uuid4())
    headers = {CORRELATION_HEADER: correlation}
    try:
        body = await _read_json(request)
        measurement = parse_observation(body, received=_now(), mode=receiver.mode)
        await _publish(receiver, [measurement], correlation)
    except InvalidReadingError as exc:
        return _with_headers(invalid_response(exc), headers)
    except UnavailableError as exc:
        return _with_headers(unavailable_response(exc), headers)
    headers["Location"] = f"Observation/{measurement.id}"
    return FhirResponse(operation_outcome([]), status_code=201, headers=headers)


async def _read_json(request: Request) -> Any:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in _JSON_TYPES:
        raise InvalidReadingError(
            f"media type must be application/fhir+json; got {media or 'none'!r}",
            code="not-supported",
        )
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _too_large()
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise _too_large()
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidReadingError(f"the body is not JSON: {exc}", code="structure") from exc


def _too_large() -> InvalidReadingError:
    return InvalidReadingError(
        f"the body is larger than {MAX_BODY_BYTES} bytes (1 MiB); split it", code="too-costly"
    )


async def _publish(receiver: Receiver, measurements: list[Measurement], correlation: str) -> None:
    headers: list[tuple[str, str | bytes | None]] = [(CORRELATION_HEADER, correlation.encode())]
    records: list[Record] = [(m.patient_key.encode(), to_json(m), headers) for m in measurements]
    if records:
        await receiver.publisher.publish(receiver.topics.readings, records)


def _bundle_response(parsed: ParsedBundle) -> dict[str, Any]:
    kind = "transaction-response" if parsed.type == "transaction" else "batch-response"
    return {
        "resourceType": "Bundle",
        "type": kind,
        "entry": [_entry_response(e) for e in parsed.entries],
    }


def _entry_response(entry: EntryResult) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if entry.full_url:
        out["fullUrl"] = entry.full_url
    if entry.measurement is not None:
        out["response"] = {
            "status": "201 Created",
            "location": f"Observation/{entry.measurement.id}",
        }
    else:
        status = _entry_status(entry.issues)
        out["response"] = {"status": status, "outcome": operation_outcome(entry.issues)}
    return out


def _entry_status(issues: tuple[Issue, ...]) -> str:
    code = http_status_of(issues[0].code) if issues else 400
    return f"{code} {HTTPStatus(code).phrase}"


def _with_headers(response: Response, headers: dict[str, str]) -> Response:
    response.headers.update(headers)
    return response


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
