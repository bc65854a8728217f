"""Small builders shared by the tests (synthetic identities only)."""

from __future__ import annotations

import copy
import datetime as dt
import json
import random
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "fixtures"
SYNTHETIC_FNR = "04677406998"  # 04.02.1974 with month + 65, valid mod-11
FNR_SYSTEM = "urn:oid:2.16.578.1.12.4.1.4.1"
TEST_PARTITIONS = 2  # the partition count of every test's topics (the `topics` fixture)


def load_fixture(name: str) -> Any:
    """Load a JSON fixture from tests/fixtures."""
    return json.loads((FIXTURES / name).read_text())


def observation(
    *,
    code: str = "8867-4",
    value: float = 72,
    unit: str = "/min",
    effective: str = "2026-11-26T08:00:00+01:00",
    fnr: str = SYNTHETIC_FNR,
    **extra: Any,
) -> dict[str, Any]:
    """A minimal valid Observation of a single quantity."""
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "subject": {"identifier": {"system": FNR_SYSTEM, "value": fnr}},
        "effectiveDateTime": effective,
        "valueQuantity": {
            "value": value,
            "unit": unit,
            "system": "http://unitsofmeasure.org",
            "code": unit,
        },
        **extra,
    }


def bundle(
    *resources: dict[str, Any], kind: str = "batch", identifier: str | None = None
) -> dict[str, Any]:
    """A Bundle of the given resources, each with a urn:uuid fullUrl."""
    out: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": kind,
        "entry": [
            {"fullUrl": f"urn:uuid:00000000-0000-4000-8000-{i:012d}", "resource": copy.deepcopy(r)}
            for i, r in enumerate(resources)
        ],
    }
    if identifier:
        out["identifier"] = {
            "system": "https://www.nhn.no/komlink/bundle-identifier",
            "value": identifier,
        }
    return out


RECEIVED = dt.datetime(2026, 11, 26, 9, 0, tzinfo=dt.UTC)


def fresh_fnr() -> str:
    """A synthetic fødselsnummer no other test uses (so counts are a test's own)."""

    from ingestion.identifiers import synthetic_person_number

    return synthetic_person_number(random.Random(), offset=80)


def for_patient(body: dict[str, Any], fnr: str) -> dict[str, Any]:
    """A copy of a Bundle with every entry moved to another patient and a new Bundle identity."""
    import uuid

    out = copy.deepcopy(body)
    for entry in out["entry"]:
        entry["resource"]["subject"]["identifier"]["value"] = fnr
    if "identifier" in out:
        out["identifier"]["value"] = str(uuid.uuid4())
    return out


def merge_patch(target: Any, patch: Any) -> Any:
    """Apply a JSON merge patch (RFC 7386): objects merge, ``null`` removes, the rest replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def corpus(name: str, section: str) -> list[Any]:
    """The cases of one section of a corpus file in tests/fixtures/corpus, as pytest params."""
    import pytest

    cases = load_fixture(f"corpus/{name}.json")[section]
    return [pytest.param(case, id=case["doc"]) for case in cases]


def eventually(check: Any, *, timeout: float, what: str, interval: float = 0.2) -> Any:
    """Poll ``check()`` until it returns something truthy; fail the test after ``timeout`` s."""
    import time

    import pytest

    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


# A complete NEWS2 set that scores 0 on every parameter (scale 1, on air).
NORMAL_VITALS: dict[str, Any] = {
    "respiration_rate": 16,
    "spo2": 97,
    "on_oxygen": False,
    "systolic_bp": 120,
    "pulse": 70,
    "consciousness": "A",
    "temperature": 37.0,
}


def fresh_orgnr() -> str:
    """A fresh synthetic organisation number (9 digits, valid mod-11, the 31… test series)."""
    weights = (3, 2, 7, 6, 5, 4, 3, 2)
    while True:
        head = "31" + "".join(random.choice("0123456789") for _ in range(6))
        check = 11 - sum(int(d) * w for d, w in zip(head, weights, strict=True)) % 11
        if check == 11:
            check = 0
        if check < 10:
            return head + str(check)


def settings_trusting(issuer: Any, **fields: Any) -> Any:
    """`ApiSettings` with ``fields`` that trust the test issuer for staff and citizen tokens."""
    from api.settings import ApiSettings

    env = {k.removeprefix("MALESTROM_").lower(): v for k, v in issuer.env().items()}
    return ApiSettings(**(env | fields))
