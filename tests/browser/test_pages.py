"""The pages in a real browser against the running system: login through the development
issuer, the live board, the patient page's charts, the citizen's page, accessibility and no
request beyond the server."""

from __future__ import annotations

import datetime as dt
import time

from playwright.sync_api import Page, expect

from infra.devissuer import SIMULATED_ORGANISATION
from tests.browser.conftest import System, accessible, new_patient
from tests.helpers import eventually, fresh_fnr

RED = {"respiration_rate": 30, "spo2": 88, "systolic_bp": 85, "pulse": 135, "temperature": 39.5,
       "consciousness": "A"}  # fmt: skip
NORMAL = {"respiration_rate": 16, "spo2": 97, "systolic_bp": 125, "pulse": 70,
          "temperature": 36.8, "consciousness": "A"}  # fmt: skip


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def test_a_nurse_logs_in_through_the_issuer_and_sees_her_organisations_patients(
    system: System, page: Page
) -> None:
    """Login page → HelseID (the local issuer's picker) → the board with the simulated fleet."""
    page.goto(f"{system.url}/web/")
    accessible(page, "login")
    page.get_by_role("link", name="Logg inn som helsepersonell (HelseID)").click()
    expect(page.get_by_role("heading", name="Logg inn (utvikling)")).to_be_visible()
    accessible(page, "issuer-picker")
    page.get_by_label("Rolle").select_option("nurse")
    expect(page.get_by_label("Organisasjonsnummer")).to_have_value(SIMULATED_ORGANISATION)
    page.get_by_role("button", name="Logg inn").click()
    page.wait_for_url("**/web/tavle")
    expect(page.locator("html")).to_have_attribute("lang", "nb")
    board = system.api("GET", "/api/v1/board").json()["patients"]
    expected = {p["patient"]["value"] for p in board}
    shown = set(page.locator("[data-patient]").evaluate_all("rs => rs.map(r => r.dataset.patient)"))
    assert expected <= shown
    assert len(shown) >= 3
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    accessible(page, "board")


def test_a_red_reading_appears_live_and_is_acknowledged_from_the_board(
    system: System, page: Page
) -> None:
    """A red set posted through the API shows on the open board within 5 s without a reload;
    Kvitter changes the alert on the page and in the API, in the nurse's name."""
    page.goto(f"{system.url}/dev/login?role=nurse")
    page.wait_for_url("**/web/tavle")
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    fnr = new_patient(system)
    page.evaluate("window.__notReloaded = true")
    posted = time.monotonic()
    system.send(fnr, _now() - dt.timedelta(minutes=1), **RED)
    alert = page.locator(f'[data-patient="{fnr}"] [data-alert-status="open"]')
    alert.wait_for(timeout=5000)
    print(f"red reading → alert on the board: {time.monotonic() - posted:.2f} s")  # noqa: T201
    assert page.evaluate("window.__notReloaded") is True
    accessible(page, "board-with-alert")
    alert.get_by_role("button", name="Kvitter").click()
    expect(
        page.locator(f'[data-patient="{fnr}"] [data-alert-status="acknowledged"]')
    ).to_be_visible()
    alerts = system.api("GET", "/api/v1/alerts", params={"patient.identifier": fnr}).json()[
        "alerts"
    ]
    assert [(a["status"], a["acknowledged_by"]) for a in alerts] == [
        ("acknowledged", "HPR 9144900")
    ]


def test_the_patient_page_draws_each_vital_sign_from_the_stored_readings(
    system: System, page: Page
) -> None:
    """Four stored sets give four points per line (BP as systolic and diastolic), a NEWS2 line,
    and the scores' inputs; the 7-day view draws hourly buckets."""
    fnr = new_patient(system)
    for minutes in (90, 60, 30, 5):
        system.send(fnr, _now() - dt.timedelta(minutes=minutes), **NORMAL)
    eventually(lambda: system.stored(fnr) == 24, timeout=60, what="24 stored readings")
    page.goto(f"{system.url}/dev/login?role=nurse")
    page.wait_for_url("**/web/tavle")
    page.goto(f"{system.url}/web/pasient/{fnr}")
    drawn = _drawn(page)
    assert {k: drawn[k] for k in ("Puls", "Respirasjonsfrekvens", "Systolisk", "Diastolisk")} == {
        "Puls": 4, "Respirasjonsfrekvens": 4, "Systolisk": 4, "Diastolisk": 4}  # fmt: skip
    assert page.locator('[data-series="Puls"] polyline').get_attribute("points").count(",") == 4
    assert page.locator("#chart-8867-4 rect.band").count() >= 4  # scoring bands behind the line
    assert drawn["NEWS2"] >= 1
    expect(page.get_by_role("heading", name="NEWS2 over tid")).to_be_visible()
    accessible(page, "patient-24h")
    page.get_by_role("link", name="siste 7 døgn (timesnitt)").click()
    page.wait_for_url("**periode=7d")
    assert 1 <= _drawn(page)["Puls"] <= 3  # 4 readings over 85 minutes: one to three hours
    accessible(page, "patient-7d")


def _drawn(page: Page) -> dict[str, int]:
    series = page.locator("[data-series]").evaluate_all(
        "gs => gs.map(g => [g.dataset.series, Number(g.dataset.points)])"
    )
    return dict(series)


def test_a_citizen_sees_own_readings_and_who_saw_them_but_not_another_person(
    system: System, page: Page
) -> None:
    """Login as a citizen through the issuer's picker: own latest values, a chart, each reading
    marked received, the nurse's read in the access log; another person's page is a 403 page."""
    fnr = fresh_fnr()
    for minutes in (120, 10):
        system.send(fnr, _now() - dt.timedelta(minutes=minutes), pulse=72, spo2=96)
    eventually(lambda: system.stored(fnr) == 4, timeout=60, what="4 stored readings")
    page.goto(f"{system.url}/web/")
    page.get_by_role("link", name="Logg inn som innbygger (ID-porten)").click()
    page.get_by_label("Fødselsnummer (syntetisk)").fill(fnr)
    page.get_by_role("button", name="Logg inn").click()
    page.wait_for_url("**/web/mine-malinger")
    expect(page.get_by_role("heading", name="Mine målinger", level=1)).to_be_visible()
    assert _drawn(page)["Puls"] >= 1
    assert page.locator("[data-reading]").count() == 4
    expect(page.locator("[data-reading]").first).to_contain_text("Mottatt")
    log = page.locator("[data-access]")
    expect(log.filter(has_text="Sykepleier Test").first).to_be_visible()  # system.stored() read
    assert page.get_by_text("NEWS2").count() == 0
    accessible(page, "citizen")
    with page.expect_download() as download:
        page.get_by_role("link", name="Last ned mine data").click()
    assert download.value.suggested_filename == "mine-malinger.json"
    answer = page.goto(f"{system.url}/web/pasient/{fresh_fnr()}")
    assert answer is not None
    assert answer.status == 403
    expect(page.get_by_role("heading", name="Ingen tilgang")).to_be_visible()
    accessible(page, "citizen-403")


def test_a_clinician_elsewhere_sees_the_patient_page_and_the_access_log_says_why(
    system: System, page: Page
) -> None:
    """A hospital clinician with a care relationship opens a municipal patient's page; the
    patient's access log names the care relationship."""
    fnr = new_patient(system)
    system.send(fnr, _now() - dt.timedelta(minutes=3), **NORMAL)
    eventually(lambda: system.stored(fnr) == 6, timeout=60, what="6 stored readings")
    page.goto(f"{system.url}/dev/login?role=clinician")
    page.wait_for_url("**/web/tavle")
    page.goto(f"{system.url}/web/pasient/{fnr}")
    expect(page.get_by_text("behandlingsrelasjon")).to_be_visible()
    citizen = system.issuer.mint("citizen", pid=fnr).auth()
    entries = system.api("GET", "/api/v1/me/access-log", auth=citizen).json()["entries"]
    assert any(
        e["who"].startswith("Lege Test") and "behandlingsrelasjon" in e["why"] for e in entries
    )


def test_logout_ends_the_session_and_docs_load_offline(system: System, page: Page) -> None:
    """After Logg ut the board sends the browser to the login; /docs renders from local assets."""
    page.goto(f"{system.url}/dev/login?role=nurse")
    page.wait_for_url("**/web/tavle")
    page.get_by_role("button", name="Logg ut").click()
    page.wait_for_url("**/web/?utlogget=1")
    page.goto(f"{system.url}/web/tavle")
    expect(page.get_by_role("heading", name="Logg inn")).to_be_visible()
    page.goto(f"{system.url}/docs")
    expect(page.locator(".swagger-ui .title").first).to_be_visible(timeout=15000)
