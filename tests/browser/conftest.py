"""The browser tests' world: `malestrom up --simulate` as a user runs it, Debian's chromium
driven by Playwright, and pages that may reach nothing but the server.

Every page a test opens goes through a context whose requests are routed: anything not for
127.0.0.1 is aborted and recorded, and the test fails if any was attempted (the pages must work
on a network without internet). Screenshots go to tests/browser/screenshots/ (ignored by git).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, Route, sync_playwright

from infra.devissuer import SIMULATED_ORGANISATION, DevIssuer
from infra.processes import free_port
from tests.engines import ENGINES, session_engine
from tests.helpers import FNR_SYSTEM, eventually, fresh_fnr

CHROMIUM = os.environ.get("MALESTROM_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
SCREENSHOTS = Path(__file__).parent / "screenshots"
FHIR = {"Content-Type": "application/fhir+json"}
SIMULATED = 3


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test here is a browser test."""
    for item in items:
        if "tests/browser/" in str(item.fspath):
            item.add_marker(pytest.mark.browser)


@dataclass
class System:
    """The running system: its URL and the issuer `malestrom up` made."""

    url: str
    issuer: DevIssuer
    hub: httpx.Auth = field(init=False)
    nurse: httpx.Auth = field(init=False)

    def __post_init__(self) -> None:
        self.hub = self.issuer.mint("hub").auth()
        self.nurse = self.issuer.mint("nurse").auth()

    def api(
        self, method: str, path: str, *, auth: httpx.Auth | None = None, **kw: Any
    ) -> httpx.Response:
        """A signed API call (a nurse of the simulated organisation unless ``auth`` says)."""
        return httpx.request(method, self.url + path, auth=auth or self.nurse, timeout=30, **kw)

    def place(self, fnr: str) -> None:
        """Make ``fnr`` a patient of the simulated organisation (as the simulator does)."""
        body = {"patient": {"system": FNR_SYSTEM, "value": fnr},
                "organisation": SIMULATED_ORGANISATION, "spo2_scale": 1,
                "long_term_oxygen": False}  # fmt: skip
        assert self.api("PUT", "/api/v1/patients/news2-settings", json=body).status_code == 200

    def send(self, fnr: str, at: dt.datetime, **vitals: float | str) -> None:
        """Post one set of readings as the hub, through the API."""
        entries = [{"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": _reading(fnr, at, k, v)}
                   for k, v in vitals.items()]  # fmt: skip
        body = {"resourceType": "Bundle", "type": "batch", "entry": entries}
        answer = self.api("POST", "/fhir", auth=self.hub, content=orjson.dumps(body), headers=FHIR)
        assert answer.status_code == 200, answer.text

    def stored(self, fnr: str) -> int:
        """How many measurements of ``fnr`` are stored."""
        params = {"patient.identifier": fnr, "_count": 1000}
        return len(self.api("GET", "/fhir/Observation", params=params).json().get("entry", []))


_LOINC = {"pulse": ("8867-4", "/min"), "spo2": ("2708-6", "%"), "temperature": ("8310-5", "Cel"),
          "respiration_rate": ("9279-1", "/min")}  # fmt: skip


def _reading(fnr: str, at: dt.datetime, name: str, value: float | str) -> dict[str, Any]:
    base = {"resourceType": "Observation", "status": "final", "effectiveDateTime": at.isoformat(),
            "subject": {"identifier": {"system": FNR_SYSTEM, "value": fnr}}}  # fmt: skip
    if name == "consciousness":
        code = {"system": "http://snomed.info/sct", "code": "1104441000000107"}
        return base | {"code": {"coding": [code]}, "valueString": value}
    if name == "systolic_bp":
        return base | {
            "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
            "component": [_bp("8480-6", float(value)), _bp("8462-4", float(value) * 0.6)],
        }
    code, unit = _LOINC[name]
    quantity = {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}
    return base | {"code": {"coding": [{"system": "http://loinc.org", "code": code}]},
                   "valueQuantity": quantity}  # fmt: skip


def _bp(code: str, value: float) -> dict[str, Any]:
    quantity = {"value": round(value), "unit": "mm[Hg]", "system": "http://unitsofmeasure.org",
                "code": "mm[Hg]"}  # fmt: skip
    return {
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "valueQuantity": quantity,
    }


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    """`malestrom up --simulate 3` on a free port, healthy, its simulated patients placed."""
    data_dir = tmp_path_factory.mktemp("browser") / "data"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALESTROM_")}
    env |= ENGINES[session_engine()].up_environment()  # the session's engine, not "auto"
    log = (data_dir.parent / "up.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "infra.cli", "up", "--port", str(port), "--data-dir", str(data_dir),
         "--simulate", str(SIMULATED)],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        eventually(lambda: _healthy(url), timeout=90, what="malestrom up to be healthy")
        running = System(url, DevIssuer.ensure(data_dir / "dev-issuer"))
        eventually(lambda: _patients(running) >= SIMULATED, timeout=60, what="the simulated fleet")
        yield running
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        log.close()


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def _patients(system: System) -> int:
    return len(system.api("GET", "/api/v1/board").json().get("patients", []))


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's chromium, headless (never a browser downloaded by Playwright); module-scoped
    because Playwright's sync API holds an event loop that later asyncio tests must not meet."""
    assert shutil.which(CHROMIUM) or Path(CHROMIUM).exists(), f"install chromium ({CHROMIUM})"
    with sync_playwright() as playwright:
        yield _launch(playwright)


def _launch(playwright: Playwright) -> Browser:
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


@dataclass
class Offline:
    """The requests a context tried to send anywhere but the server."""

    attempted: list[str] = field(default_factory=list)

    def route(self, route: Route) -> None:
        """Let requests to 127.0.0.1 through; abort and record any other."""
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            self.attempted.append(route.request.url)
            route.abort("internetdisconnected")


@pytest.fixture
def offline() -> Offline:
    """The record of outside requests of one test."""
    return Offline()


@pytest.fixture
def context(browser: Browser, offline: Offline) -> Iterator[BrowserContext]:
    """A fresh browser profile (no cookies) cut off from everything but the server; the test
    fails if a page tried to reach anything else."""
    ctx = browser.new_context(locale="nb-NO", timezone_id="Europe/Oslo")
    ctx.route("**/*", offline.route)
    yield ctx
    ctx.close()
    assert offline.attempted == [], f"pages tried to leave the server: {offline.attempted}"


@pytest.fixture
def page(context: BrowserContext) -> Page:
    """A page in the offline context."""
    return context.new_page()


def accessible(page: Page, name: str) -> None:
    """Save a screenshot of the page and require zero axe-core violations on it."""
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    results = Axe().run(page)
    assert results.violations_count == 0, results.generate_report()


def new_patient(system: System) -> str:
    """A fresh synthetic patient placed in the simulated organisation."""
    fnr = fresh_fnr()
    system.place(fnr)
    return fnr
