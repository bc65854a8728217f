"""The measurement codes malestrom understands, and their canonical units.

Each supported measurement has one canonical code (LOINC where one exists, else SNOMED CT): what
is stored and searched. It may be sent under other codings (SNOMED CT, LOINC synonyms, IEEE 11073
MDC); every coding received is kept on the Observation, the canonical one first.

The table follows HL7 Norway's VkpObservation, plus what NEWS2 needs: ACVPU and oxygen status.
LOINC codes carry a mod-10 check digit; a LOINC coding whose check digit is wrong is refused
(published tables contain such typos, e.g. body weight as ``29563-7``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ingestion.news2_inputs import ACVPU_CODE, ACVPU_VALUES, NEWS2_CODE, ROOM_AIR_CODE

__all__ = [
    "ACVPU_CODE",
    "ACVPU_VALUES",
    "LOINC",
    "MDC",
    "NEWS2_CODE",
    "NPU",
    "ROOM_AIR_CODE",
    "SNOMED",
    "UCUM",
    "CodeInfo",
    "ComponentInfo",
    "ValueKind",
    "canonical_info",
    "component_code",
    "loinc_check_digit",
    "lookup_code",
    "supported_codes",
    "valid_loinc",
]

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
MDC = "urn:iso:std:iso:11073:10101"
NPU = "urn:oid:2.16.578.1.12.4.1.1.7280"


class ValueKind(StrEnum):
    """What kind of value a measurement carries."""

    QUANTITY = "quantity"  # valueQuantity in the canonical unit
    PANEL = "panel"  # components, each a quantity
    ACVPU = "acvpu"  # a letter: SNOMED coding or valueString
    PRESENCE = "presence"  # the code itself is the finding (breathing room air)


@dataclass(frozen=True, slots=True)
class ComponentInfo:
    """A component of a panel (e.g. systolic pressure of a blood pressure panel)."""

    code: str
    display: str
    unit: str


@dataclass(frozen=True, slots=True)
class CodeInfo:
    """What malestrom knows about one kind of measurement."""

    code: str  # canonical code
    display: str
    unit: str | None  # canonical UCUM unit; None for panels and coded values
    snomed: str | None = None
    components: tuple[ComponentInfo, ...] = ()
    system: str = LOINC  # system of the canonical code
    kind: ValueKind = ValueKind.QUANTITY


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
    CodeInfo("15074-8", "Glucose [Moles/volume] in Blood", "mmol/L", snomed="434912009"),
    CodeInfo(
        "85354-9",
        "Blood pressure panel with all children optional",
        None,
        snomed="75367002",
        components=_BP_COMPONENTS,
        kind=ValueKind.PANEL,
    ),
    CodeInfo("3151-8", "Inhaled oxygen flow rate", "L/min"),
    CodeInfo("3150-0", "Inhaled oxygen concentration", "%"),
    CodeInfo(
        ACVPU_CODE,
        "ACVPU (Alert Confusion Voice Pain Unresponsive) scale score",
        None,
        system=SNOMED,
        kind=ValueKind.ACVPU,
    ),
    CodeInfo(ROOM_AIR_CODE, "Breathing room air", None, system=SNOMED, kind=ValueKind.PRESENCE),
)

# Other codings that mean the same measurement, mapped to the canonical code.
_SYNONYMS: dict[tuple[str, str], str] = {
    (LOINC, "59408-5"): "2708-6",  # SpO2 by pulse oximetry
    (NPU, "NPU02187"): "15074-8",  # glucose, Norwegian laboratory code
    (MDC, "150456"): "2708-6",  # MDC_PULS_OXIM_SAT_O2
    (MDC, "149530"): "8867-4",  # MDC_PULS_OXIM_PULS_RATE
    (MDC, "147842"): "8867-4",  # MDC_ECG_HEART_RATE
    (MDC, "149546"): "8867-4",  # MDC_PULS_RATE_NON_INV
    (MDC, "150020"): "85354-9",  # MDC_PRESS_BLD_NONINV
    (MDC, "150364"): "8310-5",  # MDC_TEMP_BODY
    (MDC, "188736"): "29463-7",  # MDC_MASS_BODY_ACTUAL
    (MDC, "151562"): "9279-1",  # MDC_RESP_RATE
    (MDC, "160184"): "15074-8",  # MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD
}

# Component codings → canonical component code (LOINC).
_COMPONENT_SYNONYMS: dict[tuple[str, str], str] = {
    (LOINC, "8480-6"): "8480-6",
    (LOINC, "8462-4"): "8462-4",
    (SNOMED, "271649006"): "8480-6",  # systolic blood pressure
    (SNOMED, "271650006"): "8462-4",  # diastolic blood pressure
    (MDC, "150021"): "8480-6",  # MDC_PRESS_BLD_NONINV_SYS
    (MDC, "150022"): "8462-4",  # MDC_PRESS_BLD_NONINV_DIA
}

_BY_CANONICAL = {info.code: info for info in _TABLE}
_BY_CODING: dict[tuple[str, str], CodeInfo] = {}
for _info in _TABLE:
    _BY_CODING[(_info.system, _info.code)] = _info
    if _info.snomed:
        _BY_CODING[(SNOMED, _info.snomed)] = _info
for _coding, _canonical in _SYNONYMS.items():
    _BY_CODING[_coding] = _BY_CANONICAL[_canonical]


def lookup_code(system: str, code: str) -> CodeInfo | None:
    """Return the measurement a coding stands for, or None when it is not supported."""
    return _BY_CODING.get((system, code))


def canonical_info(code: str) -> CodeInfo | None:
    """Return the measurement whose canonical code is ``code``."""
    return _BY_CANONICAL.get(code)


def component_code(system: str, code: str) -> str | None:
    """Return the canonical component code a coding stands for, or None."""
    return _COMPONENT_SYNONYMS.get((system, code))


def supported_codes() -> list[str]:
    """Return the supported codings as ``system|code`` strings, for error messages."""
    return sorted(f"{system}|{code}" for system, code in _BY_CODING)


def loinc_check_digit(digits: str) -> int:
    """Return the mod-10 check digit of a LOINC code's digits (the part before the hyphen)."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char) * (2 if position % 2 == 0 else 1)
        total += value // 10 + value % 10
    return (10 - total % 10) % 10


def valid_loinc(code: str) -> bool:
    """Return whether a LOINC code has the shape ``digits-check`` and a correct check digit."""
    head, sep, check = code.partition("-")
    if not sep or not head.isdigit() or not head.isascii() or len(check) != 1:
        return False
    return check.isdigit() and loinc_check_digit(head) == int(check)
