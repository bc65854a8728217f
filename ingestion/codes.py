"""The measurement codes malestrom understands, and their canonical units.

Each supported measurement has one canonical LOINC code (what is stored and searched) and may be
sent under other codings (SNOMED CT, LOINC synonyms); every coding received is kept on the
Observation, the canonical one first.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "LOINC",
    "SNOMED",
    "UCUM",
    "CodeInfo",
    "ComponentInfo",
    "lookup_code",
    "supported_codes",
]

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"


@dataclass(frozen=True, slots=True)
class ComponentInfo:
    """A component of a panel (e.g. systolic pressure of a blood pressure panel)."""

    code: str
    display: str
    unit: str


@dataclass(frozen=True, slots=True)
class CodeInfo:
    """What malestrom knows about one kind of measurement."""

    code: str  # canonical LOINC code
    display: str
    unit: str | None  # canonical UCUM unit; None for panels
    snomed: str | None = None
    components: tuple[ComponentInfo, ...] = ()


_BP_COMPONENTS = (
    ComponentInfo("8480-6", "Systolic blood pressure", "mm[Hg]"),
    ComponentInfo("8462-4", "Diastolic blood pressure", "mm[Hg]"),
)

_TABLE: tuple[CodeInfo, ...] = (
    CodeInfo("8867-4", "Heart rate", "/min", snomed="364075005"),
    CodeInfo("2708-6", "Oxygen saturation in Arterial blood", "%", snomed="431314004"),
    CodeInfo("8310-5", "Body temperature", "Cel", snomed="276885007"),
    CodeInfo("9279-1", "Respiratory rate", "/min", snomed="86290005"),
    CodeInfo("29463-7", "Body weight", "kg", snomed="27113001"),
    CodeInfo(
        "85354-9",
        "Blood pressure panel with all children optional",
        None,
        snomed="75367002",
        components=_BP_COMPONENTS,
    ),
)

# Other codings that mean the same measurement, mapped to the canonical LOINC code.
_SYNONYMS: dict[tuple[str, str], str] = {
    (LOINC, "59408-5"): "2708-6",  # SpO2 by pulse oximetry
}

_BY_CODING: dict[tuple[str, str], CodeInfo] = {}
for _info in _TABLE:
    _BY_CODING[(LOINC, _info.code)] = _info
    if _info.snomed:
        _BY_CODING[(SNOMED, _info.snomed)] = _info
for _coding, _canonical in _SYNONYMS.items():
    _BY_CODING[_coding] = next(i for i in _TABLE if i.code == _canonical)


def lookup_code(system: str, code: str) -> CodeInfo | None:
    """Return the measurement a coding stands for, or None when it is not supported."""
    return _BY_CODING.get((system, code))


def supported_codes() -> list[str]:
    """Return the supported codings as ``system|code`` strings, for error messages."""
    return sorted(f"{system}|{code}" for system, code in _BY_CODING)
