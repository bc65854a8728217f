"""Tolerant reading of sloppy FHIR JSON: correct what is unambiguous, and say so.

Real senders put a single object where an array belongs, a one-element array where a single
object belongs, and empty strings (or empty objects and arrays) for absent values. Each
correction becomes a ``warning`` issue naming the element; the resource is corrected in place.
What is ambiguous (two subjects, two different measurement times) is left for validation to
refuse.
"""

from __future__ import annotations

from typing import Any

from ingestion.outcomes import Issue

__all__ = ["tolerate"]

# Elements that are arrays wherever they appear.
_ARRAYS_ANYWHERE = frozenset(
    {"coding", "extension", "modifierExtension", "tag", "profile", "security", "interpretation"}
)
# Arrays at the top level of an Observation (elsewhere ``identifier`` is a single Identifier).
_ARRAYS_AT_TOP = _ARRAYS_ANYWHERE | frozenset(
    {
        "identifier", "basedOn", "partOf", "category", "focus", "performer", "note",
        "referenceRange", "hasMember", "derivedFrom", "component", "contained",
    }
)  # fmt: skip
# Single elements that senders wrap in one-element arrays.
_SINGLES = frozenset(
    {
        "subject", "code", "valueQuantity", "valueCodeableConcept", "device", "meta",
        "encounter", "specimen", "method", "bodySite", "dataAbsentReason",
    }
)  # fmt: skip
# Inside elements ``identifier`` is single too (Reference.identifier).
_NESTED_SINGLES = _SINGLES | {"identifier"}


def tolerate(resource: dict[str, Any], path: str) -> list[Issue]:
    """Correct unambiguous slips in ``resource`` in place; return a warning per correction."""
    issues: list[Issue] = []
    _walk(resource, path, issues, top=True)
    return issues


def _walk(node: dict[str, Any], path: str, issues: list[Issue], *, top: bool = False) -> None:
    arrays, singles = (_ARRAYS_AT_TOP, _SINGLES) if top else (_ARRAYS_ANYWHERE, _NESTED_SINGLES)
    for key in list(node):
        value = node[key]
        where = f"{path}.{key}"
        if value == "" or value == [] or value == {}:
            del node[key]
            issues.append(_warning("value", f"empty {key} treated as absent", where))
            continue
        if key in arrays and isinstance(value, dict):
            node[key] = value = [value]
            issues.append(_warning("structure", f"{key} must be an array; read as one", where))
        elif key in singles and isinstance(value, list) and len(value) == 1:
            node[key] = value = value[0]
            issues.append(_warning("structure", f"{key} is a single element; unwrapped", where))
        if isinstance(value, dict):
            _walk(value, where, issues)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, dict):
                    _walk(item, f"{where}[{index}]", issues)


def _warning(code: str, text: str, expression: str) -> Issue:
    return Issue("warning", code, f"corrected: {text}", expression)
