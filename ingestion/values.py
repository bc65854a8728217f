"""The value of an Observation, by kind: a quantity, a panel of components, an ACVPU letter or a
finding. Quantities are converted to the canonical unit and checked for plausibility.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ingestion.codes import SNOMED, UCUM, CodeInfo, ValueKind, component_code
from ingestion.exceptions import InvalidReadingError
from ingestion.measurement import Component
from ingestion.news2_inputs import ACVPU_LETTERS, ACVPU_VALUES, OXYGEN_THRESHOLDS
from ingestion.plausibility import check_plausible
from ingestion.units import convert

__all__ = ["Value", "read_quantity", "read_value"]


@dataclass(frozen=True, slots=True)
class Value:
    """What an Observation says, in canonical form."""

    value: float | None = None
    unit: str | None = None
    components: tuple[Component, ...] = ()
    value_code: str | None = None
    on_oxygen: bool | None = None


def read_value(resource: dict[str, Any], path: str, info: CodeInfo) -> Value:
    """Read the value the measurement's kind calls for.

    Raises:
        InvalidReadingError: the value is missing, of the wrong unit, or implausible.
    """
    if info.kind is ValueKind.PANEL:
        return Value(components=_components(resource, path, info))
    if info.kind is ValueKind.ACVPU:
        return Value(value_code=_acvpu(resource, path))
    if info.kind is ValueKind.PRESENCE:
        return Value(on_oxygen=False)
    assert info.unit is not None  # quantities always have a canonical unit
    quantity = resource.get("valueQuantity")
    if not quantity or quantity.get("value") is None:
        raise InvalidReadingError(
            f"{info.display} needs valueQuantity with a value in {info.unit!r}",
            expression=f"{path}.valueQuantity.value",
            code="required",
        )
    value = read_quantity(quantity, f"{path}.valueQuantity", info.code, info.unit)
    threshold = OXYGEN_THRESHOLDS.get(info.code)
    on_oxygen = None if threshold is None else value > threshold
    return Value(value=value, unit=info.unit, on_oxygen=on_oxygen)


def read_quantity(quantity: dict[str, Any], where: str, code: str, canonical: str) -> float:
    """Return a Quantity's value in the canonical unit, checked for plausibility."""
    unit = quantity.get("code") or quantity.get("unit")
    if quantity.get("system") not in (None, UCUM) or not isinstance(unit, str):
        raise InvalidReadingError(
            f"the unit must be a UCUM code (system {UCUM}); use {canonical!r}",
            expression=f"{where}.system" if unit else f"{where}.code",
            code="value",
        )
    value = convert(float(quantity["value"]), unit, canonical, expression=f"{where}.code")
    check_plausible(code, value, expression=f"{where}.value")
    return value


def _components(resource: dict[str, Any], path: str, info: CodeInfo) -> tuple[Component, ...]:
    by_code: dict[str, tuple[int, dict[str, Any]]] = {}
    for index, component in enumerate(resource.get("component") or []):
        for coding in (component.get("code") or {}).get("coding") or []:
            canonical = component_code(coding.get("system", ""), coding.get("code", ""))
            if canonical:
                by_code.setdefault(canonical, (index, component))
    found = []
    for part in info.components:
        if part.code not in by_code:
            raise InvalidReadingError(
                f"{info.display} needs a component coded {part.code} ({part.display})",
                expression=f"{path}.component",
                code="required",
            )
        index, component = by_code[part.code]
        where = f"{path}.component[{index}].valueQuantity"
        quantity = component.get("valueQuantity") or {}
        if quantity.get("value") is None:
            raise InvalidReadingError(
                f"{part.display} needs a value", expression=f"{where}.value", code="required"
            )
        found.append(
            Component(part.code, read_quantity(quantity, where, part.code, part.unit), part.unit)
        )
    return tuple(found)


def _acvpu(resource: dict[str, Any], path: str) -> str:
    text = resource.get("valueString")
    where = f"{path}.valueString"
    if text is None:
        where = f"{path}.valueCodeableConcept"
        concept = resource.get("valueCodeableConcept") or {}
        for coding in concept.get("coding") or []:
            if coding.get("system") == SNOMED and coding.get("code") in ACVPU_VALUES:
                return ACVPU_VALUES[coding["code"]]
    elif text.strip().upper() in ACVPU_LETTERS:
        return str(text.strip().upper())
    raise InvalidReadingError(
        "ACVPU needs valueString 'A', 'C', 'V', 'P' or 'U', or valueCodeableConcept with a "
        f"SNOMED CT coding of {sorted(ACVPU_VALUES)}",
        expression=where,
        code="value",
    )
