"""Panel components kept in typed columns of ``observations``: which component of which panel
lives in which column, in which unit.

The writer fills the columns and their rollups (`streams.sinks`), migration 0014 built the
rollups, and the API answers a component code from them (search by ``component-code`` and
``combo-code``, trends, ``$stats``, ``$lastn``): nothing else lists them. A component code is
answered from both the panels that carry it and any Observation of that code on its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from ingestion.news2_inputs import BP_PANEL_CODE, SYSTOLIC_CODE

__all__ = [
    "COMPONENT_SYSTEM",
    "DIASTOLIC_CODE",
    "STORED_COMPONENTS",
    "ComponentColumn",
    "StoredComponent",
    "column_values",
    "component_unit",
    "components_of_panel",
    "expand_panel",
    "stored_component",
]

COMPONENT_SYSTEM = "http://loinc.org"  # the system of every stored component code
DIASTOLIC_CODE = "8462-4"

ComponentColumn = Literal["systolic", "diastolic"]


@dataclass(frozen=True, slots=True)
class StoredComponent:
    """One component of a panel, stored in its own column of ``observations``."""

    panel: str  # the canonical code of the panel
    code: str  # the component's code (LOINC)
    column: ComponentColumn
    unit: str


STORED_COMPONENTS: tuple[StoredComponent, ...] = (
    StoredComponent(BP_PANEL_CODE, SYSTOLIC_CODE, "systolic", "mm[Hg]"),
    StoredComponent(BP_PANEL_CODE, DIASTOLIC_CODE, "diastolic", "mm[Hg]"),
)
_BY_CODE = {c.code: c for c in STORED_COMPONENTS}


def stored_component(system: str | None, code: str) -> StoredComponent | None:
    """The stored component a code (of any system when ``system`` is None) names, or None."""
    if system not in (None, COMPONENT_SYSTEM):
        return None
    return _BY_CODE.get(code)


def components_of_panel(system: str | None, code: str) -> tuple[StoredComponent, ...]:
    """The stored components of a panel code (empty for any other code)."""
    if system not in (None, COMPONENT_SYSTEM):
        return ()
    return tuple(c for c in STORED_COMPONENTS if c.panel == code)


def column_values(
    code: str, components: Iterable[tuple[str, float]]
) -> dict[ComponentColumn, float | None]:
    """The typed columns of a reading of ``code`` with these ``(component code, value)`` pairs:
    every column, None where the reading does not carry that component."""
    values: dict[ComponentColumn, float | None] = {c.column: None for c in STORED_COMPONENTS}
    stored = {c.code: c for c in STORED_COMPONENTS if c.panel == code}
    for component, value in components:
        found = stored.get(component)
        if found is not None and values[found.column] is None:
            values[found.column] = value
    return values


def expand_panel(system: str | None, code: str) -> list[tuple[str | None, str]]:
    """What a code asks for in trends and ``$stats``: a panel its stored components (each its
    own series, as FHIR's ``$stats`` answers a panel per component), any other code itself."""
    parts = components_of_panel(system, code)
    return [(COMPONENT_SYSTEM, c.code) for c in parts] or [(system, code)]


def component_unit(system: str | None, code: str) -> str | None:
    """The unit of a stored component's values (None for any other code)."""
    found = stored_component(system, code)
    return found.unit if found else None
