"""A synthetic fleet: N patients whose devices send plausible vital signs through ``POST /fhir``.

Identities are synthetic fødselsnumre (month + 65, valid mod-11). Each patient sends a full set
every ``interval_s`` (30 s): heart rate, SpO2, blood pressure, temperature, respiration rate and
ACVPU, as noise around their baseline. One patient in six (the sixth, twelfth, …; the last of a
fleet smaller than six) follows a `Deterioration` plan: from its onset (45 to 270 s after the
simulator starts) their baseline moves over `RAMP_S` to values that score NEWS2 7, so within
about seven minutes they reach 5 and the organisation gets an alert. At start the fleet is
placed in one organisation (`SIMULATED_ORGANISATION`) on room air, with an hourly schedule.

The fleet is kept in ``DATA/simulator/fleet.json`` (identities only, all synthetic): a second
`malestrom up --simulate N` on the same data directory sends for the same patients, adding
only as many as N asks beyond those.

It acts as the organisation's systems would: readings are sent with a hub's token (scope
``ingest``), the settings with a nurse's (scope ``settings``), both from the development issuer.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import random
import signal
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from infra.devissuer import SIMULATED_ORGANISATION, DevIssuer, RoleCredentials
from ingestion.codes import LOINC, UCUM
from ingestion.identifiers import FNR_SYSTEM, synthetic_person_number
from ingestion.news2_inputs import ACVPU_CODE

__all__ = [
    "RAMP_S",
    "SIMULATED_ORGANISATION",
    "Deterioration",
    "SimulatedPatient",
    "load_fleet",
    "make_fleet",
    "placement",
    "reading_bundle",
    "run_simulator",
]

log = logging.getLogger(__name__)

# code, display, unit, baseline, spread, lower, upper
_VITALS: tuple[tuple[str, str, str, float, float, float, float], ...] = (
    ("8867-4", "Heart rate", "/min", 75, 2.0, 35, 160),
    ("2708-6", "Oxygen saturation", "%", 96, 0.5, 80, 100),
    ("8310-5", "Body temperature", "Cel", 36.8, 0.1, 34.5, 40.5),
    ("9279-1", "Respiratory rate", "/min", 16, 0.8, 6, 35),
)
# Where a deteriorating patient's baseline ends (code → value): pulse 115 (NEWS2 2), SpO2 92
# (2), temperature 38.4 (1), respiration 24 (2), with BP 130 and alert: total 7, "high".
_DETERIORATED = {"8867-4": 115.0, "2708-6": 92.0, "8310-5": 38.4, "9279-1": 24.0}
RAMP_S = 200.0  # seconds from a plan's onset until the baseline reaches `_DETERIORATED`
_ONSETS_S = (45.0, 120.0, 195.0, 270.0)  # staggered, so the alerts come one by one


@dataclass(frozen=True, slots=True)
class Deterioration:
    """When a patient starts to deteriorate and how far along they are at a time."""

    onset_s: float
    ramp_s: float = RAMP_S

    def progress(self, elapsed_s: float) -> float:
        """0 before the onset, rising linearly to 1 at the ramp's end."""
        return min(1.0, max(0.0, (elapsed_s - self.onset_s) / self.ramp_s))


@dataclass
class SimulatedPatient:
    """One synthetic patient and the current state of their vital signs."""

    fnr: str
    device: str
    plan: Deterioration | None = None
    deviation: dict[str, float] = field(default_factory=dict)  # noise around the baseline
    state: dict[str, float] = field(default_factory=dict)  # the last values sent
    systolic: float = 130.0
    diastolic: float = 80.0

    @property
    def deteriorating(self) -> bool:
        """Whether this patient follows a deterioration plan."""
        return self.plan is not None

    def baseline(self, code: str, elapsed_s: float) -> float:
        """The value a vital sign hovers around ``elapsed_s`` seconds into the simulation."""
        start = next(base for c, _, _, base, *_ in _VITALS if c == code)
        progress = self.plan.progress(elapsed_s) if self.plan else 0.0
        return start + progress * (_DETERIORATED[code] - start)


def make_fleet(n: int, rng: random.Random) -> list[SimulatedPatient]:
    """Create ``n`` synthetic patients with distinct identities."""
    numbers: set[str] = set()
    while len(numbers) < n:
        numbers.add(synthetic_person_number(rng))
    return _patients(sorted(numbers))


def load_fleet(path: Path, n: int, rng: random.Random) -> list[SimulatedPatient]:
    """The first ``n`` patients of the fleet kept in ``path``, adding (and keeping) new ones
    only when it has fewer; a file that cannot be read as a fleet is made again."""
    numbers = _stored_numbers(path)
    known = set(numbers)
    added = not path.exists() or not numbers
    while len(numbers) < n:
        fnr = synthetic_person_number(rng)
        if fnr not in known:
            numbers.append(fnr)
            known.add(fnr)
            added = True
    if added:
        patients = [{"fnr": p.fnr, "device": p.device} for p in _patients(numbers)]
        _write_atomically(path, json.dumps({"patients": patients}, indent=1) + "\n")
    # The plan (one in six, at least one) is for the fleet simulated, not the fleet stored.
    return _patients(numbers[:n])


def _stored_numbers(path: Path) -> list[str]:
    """The identities kept in ``path``, in fleet order; none when it is missing or unreadable."""
    if not path.exists():
        return []
    try:
        numbers = [p["fnr"] for p in json.loads(path.read_text())["patients"]]
    except (ValueError, KeyError, TypeError) as exc:  # ValueError: not JSON, or not UTF-8
        log.warning(
            "simulator: %s cannot be read (%s); making a new fleet", path, type(exc).__name__
        )
        return []
    if not all(isinstance(fnr, str) for fnr in numbers):
        log.warning("simulator: %s holds a patient without an identity; making a new fleet", path)
        return []
    return numbers


def _write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so that a reader (or a crash) never sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with temporary.open("w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def _patients(numbers: list[str]) -> list[SimulatedPatient]:
    """Patients in fleet order: devices by position, every sixth (or the last of fewer than six)
    with a deterioration plan."""
    n = len(numbers)
    return [
        SimulatedPatient(fnr, f"SIM-{i:05d}", plan=_plan(i, n)) for i, fnr in enumerate(numbers)
    ]


def _plan(index: int, n: int) -> Deterioration | None:
    if index % 6 == 5 or (n < 6 and index == n - 1):
        return Deterioration(_ONSETS_S[(index // 6) % len(_ONSETS_S)])
    return None


def reading_bundle(
    patient: SimulatedPatient, rng: random.Random, now: dt.datetime, *, elapsed_s: float = 0.0
) -> dict[str, Any]:
    """One Bundle (type batch) with a fresh reading of each vital sign for the patient, measured
    at ``now``, ``elapsed_s`` seconds after the simulation started (its plan's clock)."""
    entries = []
    for code, display, unit, _base, spread, lower, upper in _VITALS:
        # The deviation decays toward 0 while noise is added: a random walk about the baseline.
        deviation = 0.8 * patient.deviation.get(code, 0.0) + rng.gauss(0, spread)
        patient.deviation[code] = deviation
        value = patient.baseline(code, elapsed_s) + deviation
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
    url: str,
    n: int,
    issuer: DevIssuer,
    *,
    interval_s: float = 30.0,
    seed: int | None = None,
    fleet_file: Path | None = None,
) -> None:
    """Send readings for ``n`` patients, each every ``interval_s`` seconds, until SIGTERM; the
    patients are those kept in ``fleet_file`` (made the first time), or new ones."""
    rng = random.Random(seed)
    fleet = load_fleet(fleet_file, n, rng) if fleet_file else make_fleet(n, rng)
    log.info("simulator: %d patients, %d deteriorating", n, sum(p.deteriorating for p in fleet))
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    gap = interval_s / max(1, n)
    hub, nurse = RoleCredentials(issuer, "hub"), RoleCredentials(issuer, "nurse")
    with httpx.Client(base_url=url, timeout=10.0) as client:
        _place(client, nurse, fleet, stopping)
        started = time.monotonic()
        while not stopping.is_set():
            for patient in fleet:
                if stopping.wait(gap):
                    break
                elapsed = time.monotonic() - started
                bundle = reading_bundle(patient, rng, dt.datetime.now(dt.UTC), elapsed_s=elapsed)
                _send(client, hub, bundle)


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
