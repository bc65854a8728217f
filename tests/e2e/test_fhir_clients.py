"""The common Python FHIR clients, fhirpy and fhirclient, against `malestrom up` exactly as the
README's development set-up gives it: a plain client at the development proxy (the API's port
+ 1) with no credentials, and the documented DPoP hooks (`infra.clientauth`) at the API itself."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
from fhirclient import client as fhirclient
from fhirclient.models.bundle import Bundle
from fhirclient.models.observation import Observation
from fhirclient.server import FHIRServer
from fhirpy import AsyncFHIRClient, SyncFHIRClient
from fhirpy.base.exceptions import OperationOutcome

from infra.clientauth import RequestsDpopAuth, aiohttp_dpop, development_credentials
from infra.processes import free_port, port_free
from infra.simulator import make_fleet, placement, reading_bundle
from tests.e2e.test_up import _env, malestrom_up
from tests.helpers import eventually, fresh_fnr, observation

pytestmark = pytest.mark.e2e

NEWS2 = "http://snomed.info/sct|1104051000000101"
VITAL_SIGNS = "http://terminology.hl7.org/CodeSystem/observation-category"


def _two_free_ports() -> int:
    """A port P such that P and P + 1 are free (the API and the development proxy)."""
    while True:
        port = free_port()
        if port < 65535 and port_free("127.0.0.1", port + 1):
            return port


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Path]]:
    """`malestrom up` (no options but the port and data directory): the API's and the
    development proxy's FHIR base URLs, and the data directory."""
    data_dir, port = tmp_path_factory.mktemp("clients") / "data", _two_free_ports()
    with malestrom_up(data_dir, port) as (_proc, url):
        proxy = f"http://127.0.0.1:{port + 1}"
        eventually(lambda: _healthy(proxy), timeout=90, what="the development proxy")
        yield f"{url}/fhir", f"{proxy}/fhir", data_dir


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz").status_code == 200
    except httpx.HTTPError:
        return False


def _reading(fnr: str, hour: int, value: float = 72) -> dict[str, Any]:
    category = [{"coding": [{"system": VITAL_SIGNS, "code": "vital-signs"}]}]
    when = f"2026-11-26T{hour:02d}:00:00+01:00"
    return observation(fnr=fnr, value=value, effective=when, category=category)


def _smart(base: str) -> fhirclient.FHIRClient:
    return fhirclient.FHIRClient(settings={"app_id": "malestrom-e2e", "api_base": base})


def test_fhirclient_needs_nothing_but_the_proxy_url(system: tuple[str, str, Path]) -> None:
    """fhirclient prepares from the CapabilityStatement, creates (a hub sends it) and gets the
    id back, reads it by id and searches for it (a nurse of the same organisation)."""
    _, proxy, _ = system
    smart = _smart(proxy)
    assert smart.prepare() is True
    statement = smart.server.capabilityStatement
    assert (statement.fhirVersion, statement.kind) == ("4.0.1", "instance")
    fnr = fresh_fnr()
    created = Observation(_reading(fnr, 8)).create(smart.server)
    assert created is not None
    assert created["subject"]["identifier"]["value"] == fnr
    read = Observation.read(created["id"], smart.server)
    assert (read.id, read.valueQuantity.value) == (created["id"], 72)
    search = Observation.where({"patient.identifier": fnr, "category": "vital-signs"})
    found = [r.id for r in search.perform_resources_iter(smart.server)]
    assert found == [created["id"]]
    counted = Observation.where({"patient.identifier": fnr, "_summary": "count"})
    assert counted._read_bundle(smart.server).total == 1
    subset = Observation.where({"patient.identifier": fnr, "_elements": "value"})
    only = next(subset.perform_resources_iter(smart.server))
    assert (only.valueQuantity.value, only.subject, only.effectiveDateTime) == (72, None, None)


def test_fhirpy_searches_pages_counts_and_subsets(system: tuple[str, str, Path]) -> None:
    """fhirpy creates five readings, counts them, pages through them two at a time, filters by
    category, subsets with _elements and counts with _summary=count."""
    _, proxy, _ = system
    client = SyncFHIRClient(proxy)
    assert client.execute("metadata", method="get")["fhirVersion"] == "4.0.1"
    fnr = fresh_fnr()
    ids = {client.resource("Observation", **_reading(fnr, h, 60 + h)).save().id for h in range(5)}
    assert len(ids) == 5
    assert None not in ids
    search = client.resources("Observation").search(patient__identifier=fnr)
    eventually(lambda: search.count() == 5, timeout=30, what="five readings stored")
    paged = list(search.limit(2))
    assert sorted(r.id for r in paged) == sorted(ids)
    assert len(search.limit(2).fetch()) == 2
    assert len(search.search(category="vital-signs").fetch_all()) == 5
    assert search.search(category="laboratory").fetch() == []
    subset = search.elements("code").first()
    assert subset is not None
    assert "valueQuantity" not in subset
    assert subset["code"]["coding"][0]["code"] == "8867-4"
    assert search.search(_summary="count").fetch_raw()["total"] == 5
    one = client.get("Observation", next(iter(ids)))
    assert one["meta"]["versionId"]


def test_strict_handling_refuses_an_unknown_parameter(system: tuple[str, str, Path]) -> None:
    """Under Prefer: handling=strict an unknown parameter is a 400 naming it; lenient ignores it."""
    _, proxy, _ = system
    fnr = fresh_fnr()
    created = SyncFHIRClient(proxy).resource("Observation", **_reading(fnr, 7)).save()
    strict = SyncFHIRClient(proxy, extra_headers={"Prefer": "handling=strict"})
    with pytest.raises(OperationOutcome) as refused:
        strict.resources("Observation").search(patient__identifier=fnr, colour="blue").fetch()
    assert refused.value.resource["issue"][0]["expression"] == ["colour"]
    lenient = SyncFHIRClient(proxy).resources("Observation")
    SyncFHIRClient(proxy).get("Observation", created.id)  # stored: a read waits for it
    assert [r.id for r in lenient.search(patient__identifier=fnr, colour="blue").fetch()] == [
        created.id
    ]


def test_lastn_of_the_news2_code_finds_the_score(system: tuple[str, str, Path]) -> None:
    """A full set of vital signs posted as a batch Bundle (fhirclient) is scored; $lastn of the
    NEWS2 code returns that score, to fhirpy and to fhirclient."""
    _, proxy, _ = system
    patient = make_fleet(1, random.Random())[0]
    settings_url = f"{proxy.removesuffix('/fhir')}/api/v1/patients/news2-settings"
    put = httpx.put(settings_url, json=placement(patient))
    assert put.status_code in (200, 201), put.text
    batch = reading_bundle(patient, random.Random(1), dt.datetime.now(dt.UTC))
    answer = Bundle(batch).create(_smart(proxy).server)
    assert answer is not None
    assert answer["type"] == "batch-response"
    params = {"patient.identifier": patient.fnr, "code": NEWS2}
    client = SyncFHIRClient(proxy)

    def scores() -> list[Any]:
        found: list[Any] = client.execute("Observation/$lastn", method="get", params=params).get(
            "entry", []
        )
        return found

    entry = eventually(scores, timeout=60, what="a NEWS2 score")[0]
    assert entry["resource"]["code"]["coding"][0]["code"] == "1104051000000101"
    server = FHIRServer(None, base_uri=proxy)
    found = Bundle.read_from(f"Observation/$lastn?patient.identifier={patient.fnr}&code={NEWS2}",
                             server)  # fmt: skip
    assert [e.resource.id for e in found.entry] == [entry["resource"]["id"]]


def test_the_dpop_hooks_carry_the_real_flow(system: tuple[str, str, Path]) -> None:
    """At the API itself: no token or a Bearer token is refused; the documented hooks sign each
    request (fhirpy sync as the hub, fhirclient and fhirpy async as the nurse)."""
    api, _, data_dir = system
    search_url = f"{api}/Observation?patient.identifier=x"
    assert requests.get(search_url, timeout=10).status_code == 401
    nurse = development_credentials("nurse", data_dir=data_dir)
    bearer = {"Authorization": f"Bearer {nurse.auth().token}"}
    assert requests.get(search_url, headers=bearer, timeout=10).status_code == 401
    hub = development_credentials("hub", data_dir=data_dir)
    sender = SyncFHIRClient(api, requests_config={"auth": RequestsDpopAuth(hub)})
    fnr = fresh_fnr()
    created = sender.resource("Observation", **_reading(fnr, 9)).save()
    smart = _smart(api)
    smart.server.session.auth = RequestsDpopAuth(nurse)
    assert smart.prepare() is True
    assert Observation.read(created.id, smart.server).id == created.id
    reader = AsyncFHIRClient(api, aiohttp_config={"middlewares": (aiohttp_dpop(nurse),)})

    async def search() -> list[Any]:
        found: list[Any] = (
            await reader.resources("Observation").search(patient__identifier=fnr).fetch_all()
        )
        return found

    assert [r.id for r in asyncio.run(search())] == [created.id]


@pytest.mark.parametrize(
    "setting", [{"MALESTROM_ENV": "production"}, {"MALESTROM_IDENTITY_MODE": "production"}]
)
def test_the_proxy_refuses_to_run_outside_development(
    system: tuple[str, str, Path], setting: dict[str, str]
) -> None:
    """`malestrom dev-proxy` in production, or with real identities, exits and says why."""
    _, _, data_dir = system
    env = _env(**setting)
    ran = subprocess.run(
        [sys.executable, "-m", "infra.cli", "dev-proxy", "--port", str(free_port()),
         "--data-dir", str(data_dir)],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert ran.returncode != 0
    assert "development only" in ran.stderr
