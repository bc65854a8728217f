"""Inbound FHIR Bundles: split into entries, each validated on its own.

Whole-request problems (not a Bundle, unknown type, too many entries) raise
`InvalidReadingError`; problems of one entry become that entry's issues so that one bad entry
never sinks the others (except in a ``transaction``, which the receiver treats as all or nothing).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from ingestion.exceptions import InvalidReadingError
from ingestion.identifiers import IdentityMode
from ingestion.measurement import Measurement
from ingestion.observations import UnknownCodes, read_observation
from ingestion.outcomes import Issue, issue_from_error
from ingestion.performers import municipality_of

__all__ = ["BUNDLE_TYPES", "MAX_ENTRIES", "EntryResult", "ParsedBundle", "parse_bundle"]

BUNDLE_TYPES = frozenset({"collection", "batch", "transaction"})
MAX_ENTRIES = 1000


@dataclass(frozen=True, slots=True)
class EntryResult:
    """One entry's outcome: a measurement (with any warnings), or the issues that stopped it."""

    full_url: str | None
    measurement: Measurement | None
    issues: tuple[Issue, ...] = ()


@dataclass(frozen=True, slots=True)
class ParsedBundle:
    """A parsed Bundle: its type and one result per entry, in order."""

    type: str
    entries: tuple[EntryResult, ...]
    warnings: tuple[Issue, ...] = ()  # corrections made to the Bundle itself

    @property
    def measurements(self) -> list[Measurement]:
        """The entries that passed, in order."""
        return [e.measurement for e in self.entries if e.measurement is not None]


def parse_bundle(
    body: Any,
    *,
    received: dt.datetime,
    mode: IdentityMode = IdentityMode.TEST,
    unknown_codes: UnknownCodes = UnknownCodes.REJECT,
) -> ParsedBundle:
    """Validate a Bundle of Observations entry by entry.

    Raises:
        InvalidReadingError: the request as a whole is not an acceptable Bundle
            (``code="too-costly"`` when it has too many entries).
    """
    if not isinstance(body, dict) or body.get("resourceType") != "Bundle":
        raise InvalidReadingError(
            "expected a FHIR Bundle (resourceType 'Bundle'); send one Observation to POST "
            "/fhir/Observation",
            expression="Bundle.resourceType",
            code="structure",
        )
    kind = body.get("type")
    if kind not in BUNDLE_TYPES:
        raise InvalidReadingError(
            f"Bundle.type must be one of {sorted(BUNDLE_TYPES)}; got {kind!r}",
            expression="Bundle.type",
            code="value",
        )
    warnings: list[Issue] = []
    entries = body.get("entry") or []
    if isinstance(entries, dict):
        entries = [entries]
        warnings.append(
            Issue("warning", "structure", "corrected: entry must be an array", "Bundle.entry")
        )
    if not isinstance(entries, list):
        raise InvalidReadingError(
            "Bundle.entry must be an array", expression="Bundle.entry", code="structure"
        )
    if len(entries) > MAX_ENTRIES:
        raise InvalidReadingError(
            f"a Bundle may hold at most {MAX_ENTRIES} entries; got {len(entries)}",
            expression="Bundle.entry",
            code="too-costly",
        )
    context = _Context(
        _bundle_identifier(body), received, mode, unknown_codes, municipality_of(body)
    )
    results = tuple(_parse_entry(entry, index, context) for index, entry in enumerate(entries))
    return ParsedBundle(kind, results, tuple(warnings))


@dataclass(frozen=True, slots=True)
class _Context:
    bundle_id: str | None
    received: dt.datetime
    mode: IdentityMode
    unknown_codes: UnknownCodes
    municipality: str | None


def _bundle_identifier(body: dict[str, Any]) -> str | None:
    ident = body.get("identifier")
    if isinstance(ident, list) and len(ident) == 1:
        ident = ident[0]
    if isinstance(ident, dict) and ident.get("value"):
        return f"{ident.get('system', '')}|{ident['value']}"
    return None


def _parse_entry(entry: Any, index: int, context: _Context) -> EntryResult:
    path = f"Bundle.entry[{index}]"
    if not isinstance(entry, dict):
        issue = Issue("error", "structure", "an entry must be a JSON object with a resource", path)
        return EntryResult(None, None, (issue,))
    full_url = entry.get("fullUrl") or None
    bundle_id = context.bundle_id
    identity = f"bundle|{bundle_id}|{full_url}" if bundle_id and full_url else None
    try:
        reading = read_observation(
            entry.get("resource"),
            path=f"{path}.resource",
            sender_identity=identity,
            received=context.received,
            mode=context.mode,
            unknown_codes=context.unknown_codes,
            municipality=context.municipality,
        )
    except InvalidReadingError as exc:
        return EntryResult(full_url, None, (issue_from_error(exc, prefix=f"{path}.resource"),))
    return EntryResult(full_url, reading.measurement, reading.warnings)
