"""The canonical `Measurement`: the one small contract between the stages.

It travels on ``malestrom.readings.v1`` as compact JSON (`to_json` / `from_json`), so that the
streams worker never has to re-validate FHIR; the edge adds the Observation it rendered
(``resource``, JSON text), so that the worker stores it as it is (`from_record`). Datetimes
are timezone-aware UTC. Fields added later are optional in the JSON, so records written by
older versions still read.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import orjson

from ingestion.exceptions import InvalidReadingError

__all__ = ["Coding", "Component", "Measurement", "from_json", "from_record", "to_json"]


@dataclass(frozen=True, slots=True)
class Coding:
    """A code as received (kept beside the canonical one)."""

    system: str
    code: str
    display: str | None = None


@dataclass(frozen=True, slots=True)
class Component:
    """One component value of a panel, in its canonical unit."""

    code: str
    value: float
    unit: str


@dataclass(frozen=True, slots=True)
class Measurement:
    """One reading of one patient, normalised to its canonical code and unit.

    ``id`` is deterministic: the same reading sent again gets the same id.
    """

    id: str
    patient_key: str
    patient_system: str
    patient_value: str
    code: str
    effective: dt.datetime
    received: dt.datetime
    value: float | None = None
    unit: str | None = None
    components: tuple[Component, ...] = ()
    codings: tuple[Coding, ...] = ()
    status: str = "final"
    device: str | None = None
    source: str = "fhir"
    organisation: str | None = None
    sender_identifier: tuple[str, str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    value_code: str | None = None  # a coded value, e.g. the ACVPU letter
    on_oxygen: bool | None = None  # what an oxygen-status reading says
    scorable: bool = True  # False for codes stored by setting but unknown to scoring
    late: bool = False  # measured long before it was received
    author: tuple[str, str] | None = None  # performer: the person (system, value)
    organisation_system: str | None = None  # org number or RESH system of ``organisation``
    municipality: str | None = None  # kommunenummer from Bundle.meta.tag
    client_id: str | None = None  # the sending system, from its access token (HelseID client)
    client_organisation: str | None = None  # the sending system's organisation number


def to_json(m: Measurement, *, resource: bytes | None = None) -> bytes:
    """Serialise a measurement for Kafka, with its rendered Observation (JSON) if given."""
    record: dict[str, Any] = {
        "id": m.id,
        "patient_key": m.patient_key,
        "patient": [m.patient_system, m.patient_value],
        "code": m.code,
        "effective": m.effective.isoformat(),
        "received": m.received.isoformat(),
        "value": m.value,
        "unit": m.unit,
        "components": [[c.code, c.value, c.unit] for c in m.components],
        "codings": [[c.system, c.code, c.display] for c in m.codings],
        "status": m.status,
        "device": m.device,
        "source": m.source,
        "organisation": m.organisation,
        "sender_identifier": list(m.sender_identifier) if m.sender_identifier else None,
        "extra": m.extra,
        "value_code": m.value_code,
        "on_oxygen": m.on_oxygen,
        "scorable": m.scorable,
        "late": m.late,
        "author": list(m.author) if m.author else None,
        "organisation_system": m.organisation_system,
        "municipality": m.municipality,
        "client_id": m.client_id,
        "client_organisation": m.client_organisation,
    }
    if resource is not None:
        record["resource"] = resource.decode()
    return orjson.dumps(record)


def from_json(data: bytes) -> Measurement:
    """Read a measurement written by `to_json`.

    Raises:
        InvalidReadingError: the bytes are not a measurement record.
    """
    return from_record(data)[0]


def from_record(data: bytes) -> tuple[Measurement, str | None]:
    """Read a measurement written by `to_json`, and the rendered Observation it carries (if any).

    Raises:
        InvalidReadingError: the bytes are not a measurement record.
    """
    try:
        d = orjson.loads(data)
        resource = d.get("resource")
        return _measurement(d), resource if isinstance(resource, str) else None
    except (
        orjson.JSONDecodeError,
        KeyError,
        IndexError,
        TypeError,
        ValueError,
        AttributeError,
    ) as exc:
        raise InvalidReadingError(
            f"not a measurement record: {type(exc).__name__}", code="structure"
        ) from exc


def _measurement(d: dict[str, Any]) -> Measurement:
    ident = d.get("sender_identifier")
    return Measurement(
        id=d["id"],
        patient_key=d["patient_key"],
        patient_system=d["patient"][0],
        patient_value=d["patient"][1],
        code=d["code"],
        effective=_utc(d["effective"]),
        received=_utc(d["received"]),
        value=d.get("value"),
        unit=d.get("unit"),
        components=tuple(Component(c[0], c[1], c[2]) for c in d.get("components", ())),
        codings=tuple(Coding(c[0], c[1], c[2]) for c in d.get("codings", ())),
        status=d.get("status", "final"),
        device=d.get("device"),
        source=d.get("source", "fhir"),
        organisation=d.get("organisation"),
        sender_identifier=(ident[0], ident[1]) if ident else None,
        extra=d.get("extra") or {},
        value_code=d.get("value_code"),
        on_oxygen=d.get("on_oxygen"),
        scorable=d.get("scorable", True),
        late=d.get("late", False),
        author=(author[0], author[1]) if (author := d.get("author")) else None,
        organisation_system=d.get("organisation_system"),
        municipality=d.get("municipality"),
        client_id=d.get("client_id"),
        client_organisation=d.get("client_organisation"),
    )


def _utc(text: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError("naive datetime")
    return value.astimezone(dt.UTC)
