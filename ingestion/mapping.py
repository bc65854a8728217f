"""Declarative device-mapping templates: vendor JSON → FHIR Observations → `Measurement`s.

In the spirit of the IoMT connector's JSONPath templates, a template is a YAML file (in
``ingestion/templates/``), not Python. Strings starting with ``$`` are JSONPath expressions;
anything else is a literal::

    name: omh-heart-rate
    description: Open mHealth heart-rate 2.0
    match:                               # every rule must hold, else 422 naming the rule
      - {path: $.header.schema_id.name, equals: heart-rate}
      - {path: $.body.heart_rate.value, exists: true}
    patient: {system: urn:oid:2.16.578.1.12.4.1.4.1, value: $.header.user_id}
    device: $.header.acquisition_provenance.source_name     # optional
    identity: $.header.id                                   # optional: the sender's reading id
    time: [$.body.effective_time_frame.date_time]           # first path that finds a value
    units: {beats/min: /min}                                # vendor unit → UCUM
    each: $.readings[*]                                     # optional: one group per element
    measurements:
      - code: 8867-4                                        # canonical code (see codes.py)
        when: [{path: $.kind, equals: pulse}]               # optional, per element
        value: $.body.heart_rate.value
        unit: $.body.heart_rate.unit
        components: [{code: 8480-6, value: ..., unit: ...}] # panels instead of value

Each mapped reading is built as a FHIR Observation and read by `read_observation`, so vendor
JSON meets exactly the rules FHIR does; error expressions are translated back to the JSONPath
of the vendor element that fed the offending FHIR element.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml
from jsonpath_ng.ext import parse as jsonpath  # type: ignore[import-untyped]

from ingestion.codes import UCUM, canonical_info
from ingestion.exceptions import InvalidReadingError, TemplateError
from ingestion.identifiers import IdentityMode
from ingestion.observations import Reading, read_observation

__all__ = ["TEMPLATES_DIR", "Template", "apply_template", "load_templates"]

TEMPLATES_DIR = Path(__file__).parent / "templates"

Getter = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class _Field:
    """A template field: a compiled JSONPath (or a literal), and its source text."""

    text: str
    get: Getter

    def __call__(self, data: Any) -> Any:
        return self.get(data)


@dataclass(frozen=True, slots=True)
class _Rule:
    path: _Field
    equals: Any = None
    exists: bool = True

    def failure(self, data: Any) -> str | None:
        found = self.path(data)
        if self.equals is not None and found != self.equals:
            return f"{self.path.text} must equal {self.equals!r}"
        if self.exists and found is None:
            return f"{self.path.text} must be present"
        return None


@dataclass(frozen=True, slots=True)
class _Quantity:
    code: str
    value: _Field
    unit: _Field
    when: tuple[_Rule, ...] = ()
    time: tuple[_Field, ...] = ()
    components: tuple[_Quantity, ...] = ()


@dataclass(frozen=True, slots=True)
class Template:
    """A loaded, compiled device-mapping template."""

    name: str
    description: str
    match: tuple[_Rule, ...]
    patient_system: _Field
    patient_value: _Field
    time: tuple[_Field, ...]
    measurements: tuple[_Quantity, ...]
    device: _Field | None = None
    identity: _Field | None = None
    each: _Field | None = None
    units: dict[str, str] = field(default_factory=dict)
    example: Any = None  # a payload the template takes, shown to integrators


def load_templates(directory: Path = TEMPLATES_DIR) -> dict[str, Template]:
    """Load and compile every ``*.yaml`` template in ``directory``, by name.

    Raises:
        TemplateError: a template is malformed (names the file and the problem).
    """
    templates: dict[str, Template] = {}
    for path in sorted(directory.glob("*.yaml")):
        try:
            template = _template(yaml.safe_load(path.read_text()))
        except (KeyError, TypeError, ValueError, AttributeError, yaml.YAMLError) as exc:
            raise TemplateError(f"{path.name}: {type(exc).__name__}: {exc}") from exc
        if template.name in templates:
            raise TemplateError(f"{path.name}: duplicate template name {template.name!r}")
        templates[template.name] = template
    return templates


def apply_template(
    template: Template,
    payload: Any,
    *,
    received: dt.datetime,
    mode: IdentityMode = IdentityMode.TEST,
) -> list[Reading]:
    """Map a vendor payload to readings, all or nothing.

    Raises:
        InvalidReadingError: a matching rule failed (``code="business-rule"``, naming the rule),
            or a mapped reading breaks the rules (expression = the vendor element's JSONPath).
    """
    for rule in template.match:
        failure = rule.failure(payload)
        if failure:
            raise InvalidReadingError(
                f"template {template.name!r} does not match: rule failed: {failure}",
                expression=rule.path.text,
                code="business-rule",
            )
    groups = template.each(payload) if template.each else [payload]
    groups = groups if isinstance(groups, list) else [groups]
    readings: list[Reading] = []
    for index, group in enumerate(groups):
        where = _group_path(template, index)
        for spec in template.measurements:
            if all(rule.failure(group) is None for rule in spec.when):
                readings.append(
                    _reading(template, payload, (group, where), index, spec, received, mode)
                )
    if not readings:
        raise InvalidReadingError(
            f"template {template.name!r} matched but found no measurement in the payload; compare "
            "it with the template's example (GET /ingest/templates)",
            expression=template.each.text if template.each else "$",
            code="business-rule",
        )
    return readings


def _group_path(template: Template, index: int) -> str:
    """Where the ``index``-th group is in the vendor payload, e.g. ``$.readings[1]``."""
    if template.each is None:
        return "$"
    text = template.each.text
    return text[: -len("[*]")] + f"[{index}]" if text.endswith("[*]") else text


def _in_group(where: str, text: str) -> str:
    """A group-relative JSONPath as a path in the whole payload."""
    return where + text[1:] if where != "$" and text.startswith("$") else text


def _reading(
    template: Template,
    root: Any,
    located: tuple[Any, str],
    index: int,
    spec: _Quantity,
    received: dt.datetime,
    mode: IdentityMode,
) -> Reading:
    sources: dict[str, str] = {}
    resource = _observation(template, root, located, spec, sources)
    ident = template.identity(root) if template.identity else None
    identity = f"template|{template.name}|{ident}|{index}|{spec.code}" if ident else None
    try:
        reading = read_observation(
            resource, path="Observation", sender_identity=identity, received=received, mode=mode
        )
    except InvalidReadingError as exc:
        raise _in_vendor_terms(exc, _source_of(exc.expression, sources)) from exc
    return replace(reading, measurement=replace(reading.measurement, source=template.name))


def _in_vendor_terms(exc: InvalidReadingError, path: str) -> InvalidReadingError:
    """The error of the FHIR rendering said of the vendor's own element: missing, or not of
    the right shape (a malformed vendor value, not a malformed request)."""
    detail = exc.message.removeprefix("not a valid FHIR R4 Observation: ")
    if exc.code == "required":
        return InvalidReadingError(f"{path} is missing: {detail}", expression=path, code="required")
    code = "value" if exc.code == "structure" else exc.code
    return InvalidReadingError(f"{path}: {detail}", expression=path, code=code)


def _observation(
    template: Template,
    root: Any,
    located: tuple[Any, str],
    spec: _Quantity,
    sources: dict[str, str],
) -> dict[str, Any]:
    group, where = located
    info = canonical_info(spec.code)
    system = info.system if info else "http://loinc.org"
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": system, "code": spec.code}]},
        "subject": {
            "identifier": {
                "system": _text(template.patient_system(root)),
                "value": _text(template.patient_value(root)),
            }
        },
    }
    sources["Observation.subject.identifier"] = template.patient_value.text
    candidates = spec.time or template.time
    when_field, when = _first(candidates, group, root)
    if when is not None:
        resource["effectiveDateTime"] = _text(when)
    named = when_field or (candidates[0] if candidates else None)
    sources["Observation.effective"] = _in_group(where, named.text) if named else where
    if template.device and (serial := template.device(root)) is not None:
        resource["device"] = {"identifier": {"value": _text(serial)}}
    if spec.components:
        resource["component"] = [
            {
                "code": {"coding": [{"system": system, "code": part.code}]},
                "valueQuantity": _quantity(template, part, located, sources, f"component[{i}]."),
            }
            for i, part in enumerate(spec.components)
        ]
    else:
        resource["valueQuantity"] = _quantity(template, spec, located, sources, "")
    return resource


def _quantity(
    template: Template,
    spec: _Quantity,
    located: tuple[Any, str],
    sources: dict[str, str],
    prefix: str,
) -> dict[str, Any]:
    group, where = located
    sources[f"Observation.{prefix}valueQuantity.value"] = _in_group(where, spec.value.text)
    sources[f"Observation.{prefix}valueQuantity"] = _in_group(where, spec.unit.text)
    out: dict[str, Any] = {"system": UCUM}
    value, unit = spec.value(group), spec.unit(group)
    if value is not None:
        out["value"] = value
    if unit is not None:
        out["code"] = template.units.get(str(unit), str(unit))
    return out


def _source_of(expression: str, sources: dict[str, str]) -> str:
    expression = expression.replace("effectiveDateTime", "effective")
    matches = [prefix for prefix in sources if expression.startswith(prefix)]
    return sources[max(matches, key=len)] if matches else expression


def _first(fields: Iterable[_Field], group: Any, root: Any) -> tuple[_Field | None, Any]:
    for one in fields:
        for data in (group, root):
            value = one(data)
            if value is not None:
                return one, value
    return None, None


def _text(value: Any) -> Any:
    return value if isinstance(value, str) else str(value) if value is not None else None


# --- compiling ---------------------------------------------------------------------------


def _template(doc: dict[str, Any]) -> Template:
    patient = doc["patient"]
    return Template(
        name=str(doc["name"]),
        description=str(doc.get("description", "")),
        match=tuple(_rule(r) for r in doc.get("match", ())),
        patient_system=_field(patient["system"]),
        patient_value=_field(patient["value"]),
        time=_fields(doc.get("time")),
        measurements=tuple(_spec(m) for m in doc["measurements"]),
        device=_field(doc["device"]) if "device" in doc else None,
        identity=_field(doc["identity"]) if "identity" in doc else None,
        each=_field(doc["each"], many=True) if "each" in doc else None,
        units={str(k): str(v) for k, v in (doc.get("units") or {}).items()},
        example=doc.get("example"),
    )


def _spec(doc: dict[str, Any]) -> _Quantity:
    return _Quantity(
        code=str(doc["code"]),
        value=_field(doc.get("value")),
        unit=_field(doc.get("unit")),
        when=tuple(_rule(r) for r in doc.get("when", ())),
        time=_fields(doc.get("time")),
        components=tuple(_spec(c) for c in doc.get("components", ())),
    )


def _rule(doc: dict[str, Any]) -> _Rule:
    return _Rule(_field(doc["path"]), doc.get("equals"), bool(doc.get("exists", True)))


def _fields(value: Any) -> tuple[_Field, ...]:
    if value is None:
        return ()
    return tuple(_field(v) for v in (value if isinstance(value, list) else [value]))


def _field(value: Any, *, many: bool = False) -> _Field:
    if not (isinstance(value, str) and value.startswith("$")):
        return _Field(repr(value), lambda _data: value)
    compiled = jsonpath(value)

    def get(data: Any) -> Any:
        found = [m.value for m in compiled.find(data)]
        if many:
            return found
        return found[0] if found else None

    return _Field(value, get)
