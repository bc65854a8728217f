"""Parsing of FHIR search parameters shared by the Observation and trend routes.

Every bad parameter raises `InvalidReadingError` with the parameter as ``expression``, which the
one exception handler turns into a 400 OperationOutcome.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
import uuid
from dataclasses import dataclass
from typing import Any

from api.queries import CodeRef, DateBound, PatientRef
from ingestion.exceptions import InvalidReadingError
from ingestion.performers import valid_org_number

__all__ = [
    "LASTN",
    "MAX_COUNT",
    "SEARCH",
    "STATS",
    "SUMMARY_ELEMENTS",
    "TRENDS",
    "Param",
    "category_param",
    "codes_param",
    "count_param",
    "date_bounds",
    "decode_cursor",
    "elements_param",
    "encode_cursor",
    "instant",
    "instant_range",
    "is_uuid",
    "openapi_parameters",
    "org_number_param",
    "patient_param",
    "period_param",
    "positive_int_param",
    "sort_param",
    "statistics_param",
    "strict_handling",
    "summary_count",
    "summary_elements",
    "supported",
    "total_param",
]

DEFAULT_COUNT = 50
MIN_YEAR, MAX_YEAR = 1900, 2199  # measurements of living people, with room; no overflow
MAX_COUNT = 1000
STATISTICS = ("average", "minimum", "maximum", "count", "sum")
_DATE = re.compile(
    r"(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T(?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?P<f>\.\d+)?)?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?"
)
_PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")


def _invalid(message: str, expression: str, code: str = "invalid") -> InvalidReadingError:
    return InvalidReadingError(message, expression=expression, code=code)


def patient_param(value: str | None) -> PatientRef:
    """``patient.identifier``: ``system|value`` or the value alone (required)."""
    if not value:
        raise _invalid(
            "patient.identifier is required (system|value, or the value alone)",
            "patient.identifier",
            "required",
        )
    system, sep, ident = value.partition("|")
    if not sep:
        return None, value
    if not ident:
        raise _invalid("patient.identifier needs a value after '|'", "patient.identifier", "value")
    return system or None, ident


def org_number_param(value: str, expression: str) -> str:
    """An organisation number: 9 digits with a valid mod-11 check digit (Enhetsregisteret)."""
    if not valid_org_number(value):
        raise _invalid(
            "an organisation number has 9 digits and a valid mod-11 check digit",
            expression,
            "value",
        )
    return value


def codes_param(value: str | None, *, required: bool = False, name: str = "code") -> list[CodeRef]:
    """``code`` (or another token parameter ``name``: ``component-code``, ``combo-code``):
    comma-separated ``system|code`` or ``code`` (any system) tokens."""
    if not value:
        if required:
            raise _invalid(f"{name} is required (system|code, or the code alone)", name, "required")
        return []
    codes: list[CodeRef] = []
    for token in value.split(","):
        system, sep, code = token.partition("|")
        if not (code if sep else system):
            raise _invalid(f"{name} needs a code (system|code, or the code alone)", name)
        codes.append((system, code) if sep else (None, system))
    return codes


def instant_range(text: str, expression: str) -> tuple[dt.datetime, dt.datetime]:
    """The instants ``[start, end)`` a FHIR date/dateTime of any precision covers (UTC when the
    value has no offset)."""
    if not text:
        raise _invalid(
            f"{expression} is missing: give a FHIR date or dateTime (2026-12-01, or "
            "2026-12-01T08:00:00+01:00)",
            expression,
            "required",
        )
    match = _DATE.fullmatch(text)
    if not match:
        raise _invalid(
            f"{expression} is not a FHIR date or dateTime (2026-12-01, or "
            "2026-12-01T08:00:00+01:00)",
            expression,
        )
    g = match.groupdict()
    try:
        tz = (
            dt.UTC
            if g["tz"] in (None, "Z")
            else dt.datetime.fromisoformat(f"2000-01-01T00:00{g['tz']}").tzinfo
        )
        start = dt.datetime(
            int(g["y"]), int(g["m"] or 1), int(g["d"] or 1), int(g["H"] or 0), int(g["M"] or 0),
            int(g["S"] or 0), int(float(g["f"] or 0) * 1_000_000), tzinfo=tz,
        )  # fmt: skip
    except ValueError as exc:
        raise _invalid(f"{expression} is not a valid date", expression) from exc
    if not MIN_YEAR <= start.year <= MAX_YEAR:
        raise _invalid(f"{expression} must lie between {MIN_YEAR} and {MAX_YEAR}", expression)
    if g["f"]:
        end = start + dt.timedelta(microseconds=1)
    elif g["S"]:
        end = start + dt.timedelta(seconds=1)
    elif g["M"]:
        end = start + dt.timedelta(minutes=1)
    elif g["d"]:
        end = start + dt.timedelta(days=1)
    elif g["m"]:
        end = start.replace(year=start.year + (start.month == 12), month=start.month % 12 + 1)
    else:
        end = start.replace(year=start.year + 1)
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


def date_bounds(value: str, expression: str = "date") -> list[DateBound]:
    """One date parameter (prefix eq/ge/gt/le/lt, default eq) as bounds on a time, following
    FHIR's range semantics for a value's precision."""
    prefix, text = (value[:2], value[2:]) if value[:2] in _PREFIXES else ("eq", value)
    lo, hi = instant_range(text, expression)
    bounds: dict[str, list[DateBound]] = {
        "eq": [(">=", lo), ("<", hi)],
        "ge": [(">=", lo)],
        "gt": [(">=", hi)],
        "le": [("<", hi)],
        "lt": [("<", lo)],
    }
    if prefix not in bounds:
        raise _invalid(f"{expression} prefix {prefix!r} is not supported", expression)
    return bounds[prefix]


def period_param(value: str | None) -> tuple[dt.datetime, dt.datetime]:
    """``period=start/end``: a FHIR Period, both ends inclusive at their precision."""
    if not value or value.count("/") != 1:
        raise _invalid("period is required as start/end", "period", "required")
    first, last = value.split("/")
    start, _ = instant_range(first, "period")
    _, end = instant_range(last, "period")
    if start >= end:
        raise _invalid("period must start before it ends", "period")
    return start, end


def statistics_param(value: str | None) -> list[str]:
    """``statistic``: comma-separated codes of observation-statistics we compute."""
    names = value.split(",") if value else ["average", "minimum", "maximum", "count"]
    unknown = [n for n in names if n not in STATISTICS]
    if unknown:
        raise _invalid(f"statistic must be among {', '.join(STATISTICS)}", "statistic")
    return names


def sort_param(value: str | None) -> bool:
    """``_sort``: ``-date`` (the default, newest first) or ``date``; True when newest first."""
    if value in (None, "-date"):
        return True
    if value == "date":
        return False
    raise _invalid("_sort must be date or -date", "_sort")


def positive_int_param(value: str | None, *, name: str, default: int, limit: int) -> int:
    """An integer parameter from 1 to ``limit``."""
    if value is None:
        return default
    digits = value.isascii() and value.isdigit() and len(value) <= len(str(limit))
    if not digits or not 0 < int(value) <= limit:
        raise _invalid(f"{name} must be an integer from 1 to {limit}", name)
    return int(value)


def count_param(value: str | None) -> int:
    """``_count``: page size, 1 to `MAX_COUNT`."""
    return positive_int_param(value, name="_count", default=DEFAULT_COUNT, limit=MAX_COUNT)


def encode_cursor(effective: dt.datetime, resource_id: str) -> str:
    """The opaque keyset cursor of a page's last row, with a checksum of its content."""
    raw = f"{effective.astimezone(dt.UTC).isoformat()}|{resource_id}".encode()
    return base64.urlsafe_b64encode(raw + _checksum(raw)).decode().rstrip("=")


def decode_cursor(value: str) -> tuple[dt.datetime, str]:
    """The (effective, id) a cursor names.

    Raises:
        InvalidReadingError: the cursor was not made by this server or was changed.
    """
    try:
        data = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        raw, check = data[:-_CHECK_BYTES], data[-_CHECK_BYTES:]
        if len(value) > 200 or check != _checksum(raw):
            raise ValueError("checksum")
        when, _, rid = raw.decode().partition("|")
        effective = dt.datetime.fromisoformat(when)
        if effective.tzinfo is None:
            raise ValueError("naive")
        return effective, str(uuid.UUID(rid))
    except (ValueError, UnicodeError) as exc:
        raise _invalid("_cursor is not a cursor this server gave", "_cursor") from exc


_CHECK_BYTES = 8


def _checksum(raw: bytes) -> bytes:
    return hashlib.blake2b(raw, digest_size=_CHECK_BYTES, person=b"malestrom-cursor").digest()


def instant(when: dt.datetime) -> str:
    """A FHIR instant in UTC."""
    return when.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Param:
    """A query parameter an endpoint supports: what the OpenAPI document, the
    CapabilityStatement and the strict handling all read."""

    name: str
    type: str  # FHIR search parameter type: token, date, number, string, special
    doc: str
    required: bool = False
    repeats: bool = False
    schema: dict[str, Any] | None = None  # the JSON Schema of one value (default: a string)


_DATE_SCHEMA = {"type": "string", "pattern": r"^(eq|ge|gt|le|lt)?\d{4}(-\d{2}(-\d{2}(T.+)?)?)?$"}


PATIENT = Param(
    "patient.identifier", "token", "the patient: system|value or the value alone", required=True
)
CODE = Param("code", "token", "comma-separated system|code or code (any system)")
SEARCH: tuple[Param, ...] = (
    PATIENT,
    CODE,
    Param(
        "component-code",
        "token",
        "a component's code, comma-separated system|code or code (8480-6: the blood pressure"
        " panels with a systolic value)",
    ),
    Param(
        "combo-code",
        "token",
        "the Observation's code or a component's, comma-separated system|code or code",
    ),
    Param("category", "token", "vital-signs (measurements) or survey (NEWS2 scores)"),
    Param(
        "date",
        "date",
        "effective time with a prefix eq, ge, gt, le, lt",
        repeats=True,
        schema=_DATE_SCHEMA,
    ),
    Param(
        "_lastUpdated",
        "date",
        "when malestrom stored it, with a prefix",
        repeats=True,
        schema=_DATE_SCHEMA,
    ),
    Param(
        "_count",
        "number",
        f"page size, 0 (a count only) to {MAX_COUNT}; default 50",
        schema={"type": "integer", "minimum": 0, "maximum": MAX_COUNT},
    ),
    Param(
        "_sort",
        "string",
        "-date (newest first, the default) or date",
        schema={"type": "string", "enum": ["-date", "date"]},
    ),
    Param(
        "_elements",
        "string",
        "comma-separated top-level elements to return",
        schema={"type": "string", "pattern": r"^[a-zA-Z][a-zA-Z0-9]*(,[a-zA-Z][a-zA-Z0-9]*)*$"},
    ),
    Param(
        "_summary",
        "string",
        "count: the total only; true: the summary elements; text: text, id, meta and the "
        "mandatory elements; data and false: everything (no narrative is stored)",
        schema={"type": "string", "enum": ["true", "text", "data", "count", "false"]},
    ),
    Param(
        "_total",
        "string",
        "accurate: the searchset's total; none (the default)",
        schema={"type": "string", "enum": ["none", "estimate", "accurate"]},
    ),
    Param("_cursor", "string", "the next page (from a next link)"),
)
LASTN: tuple[Param, ...] = (
    PATIENT,
    CODE,
    Param(
        "max",
        "number",
        "how many of each code, 1 to 1000; default 1",
        schema={"type": "integer", "minimum": 1, "maximum": 1000},
    ),
)
STATS: tuple[Param, ...] = (
    PATIENT,
    Param(
        "code",
        "token",
        "comma-separated system|code or code (a component code counts the panels' components;"
        " 85354-9 gives one statistic per component)",
        required=True,
    ),
    Param("period", "string", "start/end as FHIR dates; default the last 30 days"),
    Param("statistic", "string", f"comma-separated, of {', '.join(STATISTICS)}"),
)
TRENDS: tuple[Param, ...] = (
    PATIENT,
    Param(
        "code",
        "token",
        "system|code or code (a component code counts the panels' components; 85354-9 gives"
        " one series per component)",
        required=True,
    ),
    Param("from", "date", "start of the period (inclusive)", required=True, schema=_DATE_SCHEMA),
    Param("to", "date", "end of the period (exclusive)", required=True, schema=_DATE_SCHEMA),
    Param(
        "bucket",
        "string",
        "15m, 1h (the default) or 1d",
        schema={"type": "string", "enum": ["15m", "1h", "1d"]},
    ),
)


def openapi_parameters(params: tuple[Param, ...], *, omit: tuple[str, ...] = ()) -> dict[str, Any]:
    """``openapi_extra`` for a route that reads its query itself: each parameter documented."""
    return {
        "parameters": [
            {
                "name": p.name,
                "in": "query",
                "required": p.required,
                "description": f"{p.doc} (FHIR type {p.type})",
                "schema": {"type": "array", "items": _schema(p)} if p.repeats else _schema(p),
                **({"explode": True} if p.repeats else {}),
            }
            for p in params
            if p.name not in omit
        ]
    }


def _schema(param: Param) -> dict[str, Any]:
    return param.schema or {"type": "string", "minLength": 1}


def strict_handling(prefer: str | None) -> bool:
    """True under ``Prefer: handling=strict`` (lenient is the default)."""
    for part in (prefer or "").split(","):
        name, _, value = part.strip().partition("=")
        if name.strip().lower() == "handling":
            return value.strip().strip('"').lower() == "strict"
    return False


# FHIR's parameters for all interactions that change only the form of the answer: ``_format``
# (only JSON passes the request guard) and ``_pretty``. Accepted, and left out of links.
_GENERAL = frozenset({"_format", "_pretty"})


def supported(
    items: list[tuple[str, str]], params: tuple[Param, ...], *, strict: bool
) -> list[tuple[str, str]]:
    """The items of supported parameters; an unknown one is ignored (lenient) or refused.

    Raises:
        InvalidReadingError: under strict handling, naming the first unsupported parameter.
    """
    known = {p.name for p in params}
    unknown = [name for name, _ in items if name not in known and name not in _GENERAL]
    if unknown and strict:
        names = ", ".join(sorted(known))
        raise _invalid(
            f"parameter {unknown[0]!r} is not supported here (Prefer: handling=strict); "
            f"supported: {names}",
            unknown[0],
        )
    return [(name, value) for name, value in items if name in known]


def is_uuid(value: str) -> bool:
    """True for a UUID (the shape of every malestrom id)."""
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def category_param(value: str | None) -> CodeRef | None:
    """``category``: system|code or code."""
    if not value:
        return None
    system, sep, code = value.partition("|")
    return (system or None, code) if sep else (None, value)


def elements_param(value: str | None) -> frozenset[str] | None:
    """``_elements``: the top-level elements to keep (id, meta and resourceType always stay)."""
    if value is None:
        return None
    names = {v.strip() for v in value.split(",") if v.strip()}
    if not names or any(not re.fullmatch(r"[a-zA-Z][a-zA-Z0-9]*(\[x\])?", n) for n in names):
        raise _invalid("_elements must be comma-separated element names", "_elements")
    return frozenset(names)


# The elements of an R4 Observation marked Σ (isSummary) in the specification: what
# ``_summary=true`` keeps. A test holds this against fhir.resources' model of the resource.
SUMMARY_ELEMENTS = frozenset(
    {
        "id", "meta", "implicitRules", "identifier", "basedOn", "partOf", "status", "code",
        "subject", "focus", "encounter", "effectiveDateTime", "effectivePeriod",
        "effectiveTiming", "effectiveInstant", "issued", "performer", "valueQuantity",
        "valueCodeableConcept", "valueString", "valueBoolean", "valueInteger", "valueRange",
        "valueRatio", "valueSampledData", "valueTime", "valueDateTime", "valuePeriod",
        "hasMember", "derivedFrom", "component",
    }
)  # fmt: skip
_SUMMARY_MODES = ("true", "text", "data", "count", "false")


def _summary_mode(single: dict[str, str]) -> str | None:
    summary = single.get("_summary")
    if summary is not None and summary not in _SUMMARY_MODES:
        raise _invalid(f"_summary must be one of {', '.join(_SUMMARY_MODES)}", "_summary")
    return summary


def summary_count(single: dict[str, str]) -> bool:
    """True for a count-only search: ``_summary=count`` or ``_count=0``."""
    return _summary_mode(single) == "count" or single.get("_count") == "0"


def summary_elements(single: dict[str, str]) -> frozenset[str] | None:
    """The elements ``_summary`` keeps, or None for all of them. ``data`` and ``false`` keep
    everything: malestrom stores no narrative text, so there is nothing to leave out."""
    mode = _summary_mode(single)
    if mode == "true":
        return SUMMARY_ELEMENTS
    if mode == "text":
        return frozenset({"text", "id", "meta", "status", "code"})  # with the mandatory ones
    return None


def total_param(value: str | None) -> bool:
    """``_total``: accurate (count the matches) or none/estimate (do not)."""
    if value in (None, "none", "estimate"):
        return False
    if value == "accurate":
        return True
    raise _invalid("_total must be none, estimate or accurate", "_total")
