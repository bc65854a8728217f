"""A slim, precompiled structural validator of the FHIR R4 Observation.

fhir.resources validates a whole Observation in ~75 µs; this validator checks the same
structure that malestrom reads (element names, cardinality, primitive types and patterns) in a
few microseconds, through one pydantic-core `TypeAdapter` built at import time. Elements we do
not read are accepted as JSON of the right shape (object or array of objects). Unknown
elements are errors, as in FHIR.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired

from pydantic import ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError
from typing_extensions import TypedDict

from ingestion.exceptions import InvalidReadingError

__all__ = ["validate_structure"]

_CONFIG = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
_DATETIME = (
    r"^([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]"
    r"|3[0-1])(T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?(Z|(\+|-)((0[0-9]|1[0-3])"
    r":[0-5][0-9]|14:00)))?)?)?$"
)
_INSTANT = (
    r"^([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)-(0[1-9]|1[0-2])-(0[1-9]|[1-2][0-9]"
    r"|3[0-1])T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?(Z|(\+|-)((0[0-9]|1[0-3])"
    r":[0-5][0-9]|14:00))$"
)

String = Annotated[str, StringConstraints(min_length=1)]
Code = Annotated[str, StringConstraints(pattern=r"^[^\s]+( [^\s]+)*$")]
Id = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9\-\.]{1,64}$")]
DateTime = Annotated[str, StringConstraints(pattern=_DATETIME)]
Instant = Annotated[str, StringConstraints(pattern=_INSTANT)]
Decimal = Annotated[float, Field(strict=True)]
Json = dict[str, Any]
Elements = Annotated[list[Json], Field(min_length=1)]


class Coding(TypedDict):
    __pydantic_config__ = _CONFIG  # type: ignore[misc]
    id: NotRequired[String]
    extension: NotRequired[Elements]
    system: NotRequired[String]
    version: NotRequired[String]
    code: NotRequired[Code]
    display: NotRequired[String]
    userSelected: NotRequired[bool]


class CodeableConcept(TypedDict):
    __pydantic_config__ = _CONFIG  # type: ignore[misc]
    id: NotRequired[String]
    extension: NotRequired[Elements]
    coding: NotRequired[Annotated[list[Coding], Field(min_length=1)]]
    text: NotRequired[String]


class Identifier(TypedDict):
    __pydantic_config__ = _CONFIG  # type: ignore[misc]
    id: NotRequired[String]
    extension: NotRequired[Elements]
    use: NotRequired[Code]
    type: NotRequired[CodeableConcept]
    system: NotRequired[String]
    value: NotRequired[String]
    period: NotRequired[Json]
    assigner: NotRequired[Json]


class Reference(TypedDict):
    __pydantic_config__ = _CONFIG  # type: ignore[misc]
    id: NotRequired[String]
    extension: NotRequired[Elements]
    reference: NotRequired[String]
    type: NotRequired[String]
    identifier: NotRequired[Identifier]
    display: NotRequired[String]


class Quantity(TypedDict):
    __pydantic_config__ = _CONFIG  # type: ignore[misc]
    id: NotRequired[String]
    extension: NotRequired[Elements]
    value: NotRequired[Decimal]
    comparator: NotRequired[Literal["<", "<=", ">=", ">"]]
    unit: NotRequired[String]
    system: NotRequired[String]
    code: NotRequired[Code]


class Meta(TypedDict):
    __pydantic_config__ = _CONFIG  # type: ignore[misc]
    id: NotRequired[String]
    extension: NotRequired[Elements]
    versionId: NotRequired[String]
    lastUpdated: NotRequired[Instant]
    source: NotRequired[String]
    profile: NotRequired[list[String]]
    security: NotRequired[list[Coding]]
    tag: NotRequired[list[Coding]]


class Component(TypedDict):
    __pydantic_config__ = _CONFIG  # type: ignore[misc]
    id: NotRequired[String]
    extension: NotRequired[Elements]
    modifierExtension: NotRequired[Elements]
    code: CodeableConcept
    valueQuantity: NotRequired[Quantity]
    valueCodeableConcept: NotRequired[CodeableConcept]
    valueString: NotRequired[String]
    dataAbsentReason: NotRequired[CodeableConcept]
    interpretation: NotRequired[list[CodeableConcept]]
    referenceRange: NotRequired[Elements]


class Observation(TypedDict):
    __pydantic_config__ = _CONFIG  # type: ignore[misc]
    resourceType: Literal["Observation"]
    id: NotRequired[Id]
    meta: NotRequired[Meta]
    implicitRules: NotRequired[String]
    language: NotRequired[Code]
    text: NotRequired[Json]
    contained: NotRequired[Elements]
    extension: NotRequired[Elements]
    modifierExtension: NotRequired[Elements]
    identifier: NotRequired[list[Identifier]]
    basedOn: NotRequired[list[Reference]]
    partOf: NotRequired[list[Reference]]
    status: Code
    category: NotRequired[list[CodeableConcept]]
    code: CodeableConcept
    subject: NotRequired[Reference]
    focus: NotRequired[list[Reference]]
    encounter: NotRequired[Reference]
    effectiveDateTime: NotRequired[DateTime]
    effectiveInstant: NotRequired[Instant]  # R5, used by PMD
    effectivePeriod: NotRequired[Json]
    effectiveTiming: NotRequired[Json]
    issued: NotRequired[Instant]
    performer: NotRequired[list[Reference]]
    valueQuantity: NotRequired[Quantity]
    valueCodeableConcept: NotRequired[CodeableConcept]
    valueString: NotRequired[String]
    valueBoolean: NotRequired[bool]
    valueInteger: NotRequired[int]
    valueRange: NotRequired[Json]
    valueRatio: NotRequired[Json]
    valueSampledData: NotRequired[Json]
    valueTime: NotRequired[String]
    valueDateTime: NotRequired[DateTime]
    valuePeriod: NotRequired[Json]
    dataAbsentReason: NotRequired[CodeableConcept]
    interpretation: NotRequired[list[CodeableConcept]]
    note: NotRequired[Elements]
    bodySite: NotRequired[CodeableConcept]
    method: NotRequired[CodeableConcept]
    specimen: NotRequired[Reference]
    device: NotRequired[Reference]
    referenceRange: NotRequired[Elements]
    hasMember: NotRequired[list[Reference]]
    derivedFrom: NotRequired[list[Reference]]
    component: NotRequired[list[Component]]


_ADAPTER: TypeAdapter[Observation] = TypeAdapter(Observation)
_REQUIRED = frozenset({"missing"})


def validate_structure(resource: dict[str, Any], path: str) -> None:
    """Check an Observation's structure against FHIR R4 (with R5 ``effectiveInstant``).

    Raises:
        InvalidReadingError: ``structure`` (or ``required``) with the FHIRPath of the first
            offending element.
    """
    try:
        _ADAPTER.validate_python(resource)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        location = "".join(
            f"[{part}]" if isinstance(part, int) else f".{part}" for part in first["loc"]
        )
        kind = "required" if first["type"] in _REQUIRED else "structure"
        raise InvalidReadingError(
            f"not a valid FHIR R4 Observation: {_message(first)}",
            expression=f"{path}{location}",
            code=kind,
        ) from None


def _message(error: Any) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown element (check the spelling; FHIR R4 has no such element here)"
    if error["type"] == "string_pattern_mismatch":
        return (
            "not in the FHIR format of this element (a dateTime with a time needs a timezone, "
            "e.g. 2026-11-26T08:30:00+01:00; a code has no surrounding spaces)"
        )
    return str(error["msg"])
