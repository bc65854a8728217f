"""A synthetic fleet: N patients whose devices send plausible vital signs through ``POST /fhir``.

Identities are synthetic fødselsnumre (month + 65, valid mod-11). Each patient sends a few
readings a minute: heart rate, SpO2, blood pressure, temperature and respiration rate, with a
slow random walk so that charts and NEWS2 move.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import signal
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from ingestion.codes import LOINC, UCUM
from ingestion.identifiers import FNR_SYSTEM, synthetic_person_number

__all__ = ["SimulatedPatient", "make_fleet", "reading_bundle", "run_simulator"]

log = logging.getLogger(__name__)

# code, display, unit, baseline, spread, lower, upper
_VITALS: tuple[tuple[str, str, str, float, float, float, float], ...] = (
    ("8867-4", "Heart rate", "/min", 75, 2.0, 35, 160),
    ("2708-6", "Oxygen saturation", "%", 96, 0.5, 80, 100),
    ("8310-5", "Body temperature", "Cel", 36.8, 0.1, 34.5, 40.5),
    ("9279-1", "Respiratory rate", "/min", 16, 0.8, 6, 35),
)


@dataclass
class SimulatedPatient:
    """One synthetic patient and the current state of their vital signs."""

    fnr: str
    device: str
    state: dict[str, float] = field(default_factory=dict)
    systolic: float = 130.0
    diastolic: float = 80.0


def make_fleet(n: int, rng: random.Random) -> list[SimulatedPatient]:
    """Create ``n`` synthetic patients with distinct identities."""
    numbers: set[str] = set()
    while len(numbers) < n:
        numbers.add(synthetic_person_number(rng))
    return [
        SimulatedPatient(fnr, f"SIM-{i:05d}", {code: base for code, _, _, base, *_ in _VITALS})
        for i, fnr in enumerate(sorted(numbers))
    ]


def reading_bundle(
    patient: SimulatedPatient, rng: random.Random, now: dt.datetime
) -> dict[str, Any]:
    """One Bundle (type batch) with a fresh reading of each vital sign for the patient."""
    entries = []
    for code, display, unit, _base, spread, lower, upper in _VITALS:
        value = patient.state[code] + rng.gauss(0, spread)
        patient.state[code] = min(upper, max(lower, value))
        decimals = 1 if unit == "Cel" else 0
        quantity = round(patient.state[code], decimals)
        entries.append(_entry(patient, code, display, now, {"valueQuantity": _q(quantity, unit)}))
    patient.systolic = min(230, max(80, patient.systolic + rng.gauss(0, 2)))
    patient.diastolic = min(130, max(40, patient.diastolic + rng.gauss(0, 1.5)))
    bp = {
        "component": [
            _component("8480-6", "Systolic blood pressure", round(patient.systolic)),
            _component("8462-4", "Diastolic blood pressure", round(patient.diastolic)),
        ]
    }
    entries.append(_entry(patient, "85354-9", "Blood pressure panel", now, bp))
    return {
        "resourceType": "Bundle",
        "type": "batch",
        "identifier": {"system": "urn:malestrom:simulator", "value": str(uuid.uuid4())},
        "entry": entries,
    }


def _entry(
    patient: SimulatedPatient, code: str, display: str, now: dt.datetime, value: dict[str, Any]
) -> dict[str, Any]:
    full_url = f"urn:uuid:{uuid.uuid4()}"
    resource = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": code, "display": display}]},
        "subject": {"identifier": {"system": FNR_SYSTEM, "value": patient.fnr}},
        "effectiveDateTime": now.isoformat(),
        "device": {"identifier": {"value": patient.device}},
        **value,
    }
    return {
        "fullUrl": full_url,
        "resource": resource,
        "request": {"method": "POST", "url": "Observation"},
    }


def _q(value: float, unit: str) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": UCUM, "code": unit}


def _component(code: str, display: str, value: float) -> dict[str, Any]:
    return {
        "code": {"coding": [{"system": LOINC, "code": code, "display": display}]},
        "valueQuantity": _q(value, "mm[Hg]"),
    }


def run_simulator(url: str, n: int, *, interval_s: float = 30.0, seed: int | None = None) -> None:
    """Send readings for ``n`` patients, each every ``interval_s`` seconds, until SIGTERM."""
    rng = random.Random(seed)
    fleet = make_fleet(n, rng)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    gap = interval_s / max(1, n)
    with httpx.Client(base_url=url, timeout=10.0) as client:
        while not stopping.is_set():
            for patient in fleet:
                if stopping.wait(gap):
                    break
                _send(client, reading_bundle(patient, rng, dt.datetime.now(dt.UTC)))


def _send(client: httpx.Client, bundle: dict[str, Any]) -> None:
    try:
        response = client.post(
            "/fhir", json=bundle, headers={"Content-Type": "application/fhir+json"}
        )
        if response.status_code >= 300:
            log.warning("simulator: POST /fhir answered %d", response.status_code)
    except httpx.HTTPError as exc:
        log.warning("simulator: POST /fhir failed: %s", type(exc).__name__)
