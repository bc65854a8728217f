"""A synthetic fleet: N patients whose devices send plausible vital signs through ``POST /fhir``.

Identities are synthetic fødselsnumre (month + 65, valid mod-11). Each patient sends a few
readings a minute: heart rate, SpO2, blood pressure, temperature, respiration rate and ACVPU,
as a random walk around their baseline; about one in six slowly deteriorates, so the nurse's
board fills with NEWS2 scores and, in time, alerts. At start the fleet is placed in one
organisation (`SIMULATED_ORGANISATION`) on room air, with an hourly measurement schedule.

It acts as the organisation's systems would: readings are sent with a hub's token (scope
``ingest``), the settings with a nurse's (scope ``settings``), both from the development issuer.
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

from infra.devissuer import SIMULATED_ORGANISATION, DevIssuer, RoleCredentials
from ingestion.codes import LOINC, UCUM
from ingestion.identifiers import FNR_SYSTEM, synthetic_person_number
from ingestion.news2_inputs import ACVPU_CODE

__all__ = [
    "SIMULATED_ORGANISATION",
    "SimulatedPatient",
    "make_fleet",
    "placement",
    "reading_bundle",
    "run_simulator",
]

# Per reading, how a deteriorating patient's vital signs drift (code → change).
_DRIFT = {"8867-4": 0.4, "2708-6": -0.06, "8310-5": 0.02, "9279-1": 0.12}

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
    baseline: dict[str, float] = field(default_factory=dict)
    deteriorating: bool = False
    systolic: float = 130.0
    diastolic: float = 80.0


def make_fleet(n: int, rng: random.Random) -> list[SimulatedPatient]:
    """Create ``n`` synthetic patients with distinct identities."""
    numbers: set[str] = set()
    while len(numbers) < n:
        numbers.add(synthetic_person_number(rng))
    baseline = {code: base for code, _, _, base, *_ in _VITALS}
    return [
        SimulatedPatient(fnr, f"SIM-{i:05d}", dict(baseline), dict(baseline), i % 6 == 5)
        for i, fnr in enumerate(sorted(numbers))
    ]


def reading_bundle(
    patient: SimulatedPatient, rng: random.Random, now: dt.datetime
) -> dict[str, Any]:
    """One Bundle (type batch) with a fresh reading of each vital sign for the patient."""
    entries = []
    for code, display, unit, _base, spread, lower, upper in _VITALS:
        if patient.deteriorating:
            patient.baseline[code] += _DRIFT[code]
        pull = 0.2 * (patient.baseline[code] - patient.state[code])  # back toward the baseline
        value = patient.state[code] + pull + rng.gauss(0, spread)
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
    acvpu = {
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": ACVPU_CODE}]},
        "valueString": "A",
    }
    entries.append(_entry(patient, ACVPU_CODE, "ACVPU", now, acvpu))
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


def run_simulator(
    url: str, n: int, issuer: DevIssuer, *, interval_s: float = 30.0, seed: int | None = None
) -> None:
    """Send readings for ``n`` patients, each every ``interval_s`` seconds, until SIGTERM."""
    rng = random.Random(seed)
    fleet = make_fleet(n, rng)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    gap = interval_s / max(1, n)
    hub, nurse = RoleCredentials(issuer, "hub"), RoleCredentials(issuer, "nurse")
    with httpx.Client(base_url=url, timeout=10.0) as client:
        _place(client, nurse, fleet, stopping)
        while not stopping.is_set():
            for patient in fleet:
                if stopping.wait(gap):
                    break
                _send(client, hub, reading_bundle(patient, rng, dt.datetime.now(dt.UTC)))


def placement(patient: SimulatedPatient) -> dict[str, Any]:
    """The patient's NEWS2 settings: the simulated organisation, room air, an hourly schedule."""
    return {
        "patient": {"system": FNR_SYSTEM, "value": patient.fnr},
        "organisation": SIMULATED_ORGANISATION,
        "spo2_scale": 1,
        "long_term_oxygen": False,
        "expected_interval_minutes": 60,
    }


def _place(
    client: httpx.Client,
    nurse: RoleCredentials,
    fleet: list[SimulatedPatient],
    stopping: threading.Event,
) -> None:
    """Put the fleet in the simulated organisation, on room air, with an hourly schedule."""
    for patient in fleet:
        settings = placement(patient)
        while not stopping.is_set():
            try:
                answer = client.put(
                    "/api/v1/patients/news2-settings", json=settings, auth=nurse.auth()
                )
                if answer.is_success:
                    break
            except httpx.HTTPError as exc:
                log.warning("simulator: settings not stored yet: %s", type(exc).__name__)
            stopping.wait(1.0)


def _send(client: httpx.Client, hub: RoleCredentials, bundle: dict[str, Any]) -> None:
    try:
        response = client.post(
            "/fhir", json=bundle, headers={"Content-Type": "application/fhir+json"}, auth=hub.auth()
        )
        if response.status_code >= 300:
            log.warning("simulator: POST /fhir answered %d", response.status_code)
    except httpx.HTTPError as exc:
        log.warning("simulator: POST /fhir failed: %s", type(exc).__name__)
