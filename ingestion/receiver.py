"""Edge adapter: the HTTP receiver for FHIR readings (``POST /fhir``, ``POST /fhir/Observation``).

Thin by design: read and check the request, call the pure parser, publish what passed, answer.
The answer is 2xx only after the broker acknowledged every accepted entry.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from http import HTTPStatus
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from ingestion.bundles import EntryResult, ParsedBundle, parse_bundle
from ingestion.exceptions import InvalidReadingError, UnavailableError
from ingestion.identifiers import IdentityMode
from ingestion.known import Custody, KnownIds, RecentIds
from ingestion.measurement import Measurement, to_json
from ingestion.metrics import IngestMeter, NullMeter
from ingestion.observations import UnknownCodes, read_observation
from ingestion.outcomes import Issue, operation_outcome
from ingestion.publisher import Publisher, Record
from ingestion.rendering import to_observation
from ingestion.responses import (
    FhirResponse,
    invalid_response,
    outcome_response,
    unavailable_response,
)
from ingestion.topics import Topics

__all__ = [
    "CORRELATION_HEADER",
    "MAX_BODY_BYTES",
    "Receiver",
    "ReceiverDep",
    "Sender",
    "accept",
    "correlation_of",
    "read_json",
    "router",
]

MAX_BODY_BYTES = 1024 * 1024
CORRELATION_HEADER = "correlation-id"
_JSON_TYPES = ("application/fhir+json", "application/json")
_BAD_REQUEST = frozenset({"structure", "invalid"})  # an entry that is not an Observation at all


@dataclass(frozen=True, slots=True)
class Sender:
    """The authenticated system that sends readings: its client id and organisation number."""

    client_id: str | None
    organisation: str | None


def _no_sender(_request: Request) -> Sender | None:
    return None


@dataclass(frozen=True, slots=True)
class Receiver:
    """What the receiver needs: where to publish, which identities and codes to accept, which
    ids are already known (so that resends answer ``200 OK``), who sends (from the request's
    authentication), where to note which organisation holds data about which patient, and from
    what age at acceptance a reading takes the backfill lane."""

    publisher: Publisher
    topics: Topics
    mode: IdentityMode
    known: KnownIds | None = None
    unknown_codes: UnknownCodes = UnknownCodes.REJECT
    recent: RecentIds = field(default_factory=RecentIds)
    sender_of: Callable[[Request], Sender | None] = _no_sender
    custody: Custody | None = None
    backfill_after: dt.timedelta = dt.timedelta(hours=1)
    meter: IngestMeter = field(default_factory=NullMeter)


def get_receiver(request: Request) -> Receiver:
    """Dependency: the receiver the composition root placed on the app."""
    receiver: Receiver = request.app.state.receiver
    return receiver


ReceiverDep = Annotated[Receiver, Depends(get_receiver)]
router = APIRouter(tags=["ingestion"])


@router.post("/fhir")
@router.post("/fhir/", include_in_schema=False)  # the base as fhirclient and fhirpy write it
async def post_bundle(request: Request, receiver: ReceiverDep) -> Response:
    """Accept a Bundle (collection, batch or transaction) of Observations."""
    headers = {CORRELATION_HEADER: correlation_of(request)}
    try:
        body = await read_json(request)
        parsed = parse_bundle(
            body, received=_now(), mode=receiver.mode, unknown_codes=receiver.unknown_codes
        )
        if parsed.type == "transaction" and any(e.measurement is None for e in parsed.entries):
            issues = [i for e in parsed.entries for i in e.issues if i.severity == "error"]
            _count_refused(receiver.meter, parsed.entries)
            return outcome_response(422, issues, headers)
        sender = receiver.sender_of(request)
        known = await accept(receiver, parsed.measurements, headers[CORRELATION_HEADER], sender)
    except InvalidReadingError as exc:
        receiver.meter.refused(exc.code)
        return _with_headers(invalid_response(exc), headers)
    except UnavailableError as exc:
        receiver.meter.refused("transient")
        return _with_headers(unavailable_response(exc), headers)
    _count_refused(receiver.meter, parsed.entries)
    return FhirResponse(_bundle_response(parsed, known), headers=headers)


@router.post("/fhir/Observation")
async def post_observation(request: Request, receiver: ReceiverDep) -> Response:
    """Accept one Observation: 201 (or 200 when it is stored already) with ``Location`` and,
    as FHIR servers answer a create, the resource as it is stored (``Prefer:
    return=representation``, the default), only the OperationOutcome of corrections
    (``return=OperationOutcome``), or nothing (``return=minimal``)."""
    headers = {CORRELATION_HEADER: correlation_of(request)}
    try:
        body = await read_json(request)
        reading = read_observation(
            body, received=_now(), mode=receiver.mode, unknown_codes=receiver.unknown_codes
        )
        sender = receiver.sender_of(request)
        known = await accept(receiver, [reading.measurement], headers[CORRELATION_HEADER], sender)
    except InvalidReadingError as exc:
        receiver.meter.refused(exc.code)
        return _with_headers(invalid_response(exc), headers)
    except UnavailableError as exc:
        receiver.meter.refused("transient")
        return _with_headers(unavailable_response(exc), headers)
    measurement = _with_sender(reading.measurement, sender)
    headers["Location"] = f"Observation/{measurement.id}"
    status = 200 if known else 201
    wanted = _return_preference(request.headers.get("prefer"))
    if wanted == "minimal":
        return Response(status_code=status, headers=headers)
    if wanted == "OperationOutcome":
        return FhirResponse(
            operation_outcome(reading.warnings), status_code=status, headers=headers
        )
    return FhirResponse(to_observation(measurement), status_code=status, headers=headers)


def _return_preference(prefer: str | None) -> str:
    """``Prefer: return=…`` (RFC 7240): representation (the default), minimal or
    OperationOutcome."""
    for part in (prefer or "").split(","):
        name, _, value = part.strip().partition("=")
        if name.strip().lower() == "return":
            return value.strip().strip('"')
    return "representation"


def _with_sender(m: Measurement, sender: Sender | None) -> Measurement:
    if sender is None:
        return m
    return replace(m, client_id=sender.client_id, client_organisation=sender.organisation)


def correlation_of(request: Request) -> str:
    """The request's correlation id: the one the app's request log gave it, else the
    sender's, else a new one."""
    given: str | None = getattr(request.state, "correlation_id", None)
    return given or request.headers.get(CORRELATION_HEADER) or str(uuid.uuid4())


async def accept(
    receiver: Receiver,
    measurements: Sequence[Measurement],
    correlation: str,
    sender: Sender | None = None,
) -> set[str]:
    """Publish the measurements not already stored; return the ids that were (answered 200).

    An id counts as known only once it is stored, never because this process published it:
    a resend of anything not yet stored is published again (storage is idempotent), so a
    reading lost with a broker that restarted comes back with the sender's resend. The sender
    (from the access token) travels with each measurement as its provenance, and its
    organisation is noted as holding data about each patient.

    Raises:
        UnavailableError: the broker did not acknowledge; nothing may be reported accepted.
    """
    if sender is not None:
        measurements = [_with_sender(m, sender) for m in measurements]
        if receiver.custody is not None and sender.organisation:
            await receiver.custody.record(
                {(m.patient_key, sender.organisation) for m in measurements}
            )
    ids = [m.id for m in measurements]
    known = await receiver.known.known(ids) if receiver.known is not None else set()
    fresh = [m for m in measurements if m.id not in known]
    await _publish(receiver, fresh, correlation)
    receiver.recent.add(m.id for m in fresh)
    return known


async def read_json(request: Request, *, media_types: tuple[str, ...] = _JSON_TYPES) -> Any:
    """Read a JSON body of at most 1 MiB with one of ``media_types``.

    Raises:
        InvalidReadingError: wrong media type (415), too large (413), not JSON (400).
    """
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in media_types:
        raise InvalidReadingError(
            f"Content-Type must be one of {', '.join(media_types)}; got {media or 'none'!r}",
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
        raise InvalidReadingError(
            f"the body is not JSON ({exc}); send a UTF-8 JSON document", code="structure"
        ) from exc


def _too_large() -> InvalidReadingError:
    return InvalidReadingError(
        f"the body is larger than {MAX_BODY_BYTES} bytes (1 MiB); split it", code="too-costly"
    )


async def _publish(receiver: Receiver, measurements: list[Measurement], correlation: str) -> None:
    """Publish each measurement on its lane: live, or backfill when it was old on arrival."""
    headers: list[tuple[str, str | bytes | None]] = [(CORRELATION_HEADER, correlation.encode())]
    lanes: dict[str, list[Record]] = {}
    for m in measurements:
        old = m.received - m.effective > receiver.backfill_after
        topic = receiver.topics.backfill if old else receiver.topics.readings
        value = to_json(m, resource=orjson.dumps(to_observation(m)))  # rendered once, here
        lanes.setdefault(topic, []).append((m.patient_key.encode(), value, headers))
    for topic, records in lanes.items():
        started = time.perf_counter()
        await receiver.publisher.publish(topic, records)
        lane = "backfill" if topic == receiver.topics.backfill else "live"
        receiver.meter.published(lane, time.perf_counter() - started)
        receiver.meter.accepted(lane, len(records))


def _count_refused(meter: IngestMeter, entries: Sequence[EntryResult]) -> None:
    """Count the entries of a Bundle that were refused, by their first error's code."""
    for entry in entries:
        if entry.measurement is None:
            codes = [i.code for i in entry.issues if i.severity == "error"]
            meter.refused(codes[0] if codes else "invalid")


def _bundle_response(parsed: ParsedBundle, known: set[str]) -> dict[str, Any]:
    kind = "transaction-response" if parsed.type == "transaction" else "batch-response"
    entries = [_entry_response(e, known) for e in parsed.entries]
    if parsed.warnings and entries:  # corrections to the Bundle itself ride on the first entry
        first = parsed.entries[0]
        entries[0]["response"]["outcome"] = operation_outcome(parsed.warnings + first.issues)
    return {"resourceType": "Bundle", "type": kind, "entry": entries}


def _entry_response(entry: EntryResult, known: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if entry.full_url:
        out["fullUrl"] = entry.full_url
    if entry.measurement is not None:
        seen = entry.measurement.id in known
        out["response"] = {
            "status": "200 OK" if seen else "201 Created",
            "location": f"Observation/{entry.measurement.id}",
        }
        if entry.issues:
            out["response"]["outcome"] = operation_outcome(entry.issues)
    else:
        status = _entry_status(entry.issues)
        out["response"] = {"status": status, "outcome": operation_outcome(entry.issues)}
    return out


def _entry_status(issues: tuple[Issue, ...]) -> str:
    errors = [i for i in issues if i.severity == "error"]
    code = 400 if not errors or errors[0].code in _BAD_REQUEST else 422
    return f"{code} {HTTPStatus(code).phrase}"


def _with_headers(response: Response, headers: dict[str, str]) -> Response:
    response.headers.update(headers)
    return response


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
