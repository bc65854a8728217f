"""The inputs of NEWS2, in one table: which canonical codes feed which parameter, in which unit,
and from which stored column the scorer reads the value.

Ingestion uses it to read ACVPU answers and oxygen status, the writer to fill the typed
columns (``systolic``, ``acvpu``, ``on_oxygen``), the scorer to read a stored row's value from
the column the table names, and the SQL takes its codes as parameters: nothing else lists them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "ACVPU_CODE",
    "ACVPU_LETTERS",
    "ACVPU_VALUES",
    "BP_PANEL_CODE",
    "INPUTS",
    "NEWS2_CODE",
    "OXYGEN_THRESHOLDS",
    "ROOM_AIR_CODE",
    "SYSTOLIC_CODE",
    "Column",
    "Input",
    "input_codes",
    "input_of",
    "parameter_of",
]

# NEWS2 total (SNOMED CT, UK edition): derived by malestrom, never received.
NEWS2_CODE = "1104051000000101"
ACVPU_CODE = "1104441000000107"
ROOM_AIR_CODE = "722742002"
BP_PANEL_CODE = "85354-9"
SYSTOLIC_CODE = "8480-6"

# ACVPU answers as SNOMED CT findings → the letter NEWS2 scores.
ACVPU_VALUES: dict[str, str] = {
    "248234008": "A",  # mentally alert
    "130987000": "C",  # acute confusion
    "450847001": "V",  # responds to voice
    "450848006": "P",  # responds to pain
    "422768004": "U",  # unresponsive
}
ACVPU_LETTERS = frozenset("ACVPU")
# Inhaled oxygen: a flow above 0 L/min or a concentration above 21 % means supplemental oxygen.
OXYGEN_THRESHOLDS: dict[str, float] = {"3151-8": 0.0, "3150-0": 21.0}

Column = Literal["value", "systolic", "acvpu", "on_oxygen"]


@dataclass(frozen=True, slots=True)
class Input:
    """One canonical code that feeds a NEWS2 parameter, and where its value is stored."""

    code: str
    parameter: str
    unit: str | None
    column: Column


INPUTS: tuple[Input, ...] = (
    Input("9279-1", "respiration_rate", "/min", "value"),
    Input("2708-6", "spo2", "%", "value"),
    Input("59408-5", "spo2", "%", "value"),  # stored as sent before synonyms were mapped
    Input(SYSTOLIC_CODE, "systolic_bp", "mm[Hg]", "value"),
    Input(BP_PANEL_CODE, "systolic_bp", "mm[Hg]", "systolic"),  # the panel's systolic component
    Input("8867-4", "pulse", "/min", "value"),
    Input("8310-5", "temperature", "Cel", "value"),
    Input(ACVPU_CODE, "consciousness", None, "acvpu"),
    Input("3151-8", "on_oxygen", "L/min", "on_oxygen"),
    Input("3150-0", "on_oxygen", "%", "on_oxygen"),
    Input(ROOM_AIR_CODE, "on_oxygen", None, "on_oxygen"),
)
_BY_CODE = {i.code: i for i in INPUTS}


def input_of(code: str) -> Input | None:
    """The NEWS2 input a canonical code is, or None."""
    return _BY_CODE.get(code)


def parameter_of(code: str) -> str | None:
    """The NEWS2 parameter a canonical code feeds, or None."""
    found = _BY_CODE.get(code)
    return found.parameter if found else None


def input_codes() -> list[str]:
    """Every canonical code that feeds NEWS2 (a parameter for the SQL)."""
    return list(_BY_CODE)
