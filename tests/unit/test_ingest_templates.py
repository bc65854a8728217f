"""Vendor JSON through declarative device-mapping templates, and the ``/ingest`` endpoints.

Driven by tests/fixtures/corpus/vendor.json: Open mHealth data points and two vendor shapes,
with the canonical measurements they must give, or the rule / element that must be named.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from infra.devissuer import DevIssuer
from ingestion.exceptions import TemplateError
from ingestion.known import RecentIds
from ingestion.mapping import apply_template, load_templates
from tests.helpers import RECEIVED, SYNTHETIC_FNR, corpus
from tests.unit.offline import offline_api
from tests.unit.test_receiver import FakePublisher, FakeStore

TEMPLATES = load_templates()


def _canonical(readings: list[Any]) -> list[list[Any]]:
    out = []
    for r in readings:
        m = r.measurement
        value = [[c.code, pytest.approx(c.value, abs=0.01)] for c in m.components] or (
            pytest.approx(m.value, abs=0.01)
        )
        out.append([m.code, value, m.unit])
    return out


def test_the_shipped_templates_cover_open_mhealth_and_two_vendors() -> None:
    """Six Open mHealth schemas and at least two vendor shapes ship as templates."""
    omh = {n for n in TEMPLATES if n.startswith("omh-")}
    assert omh == {
        "omh-heart-rate", "omh-blood-pressure", "omh-body-temperature",
        "omh-oxygen-saturation", "omh-respiratory-rate", "omh-body-weight",
    }  # fmt: skip
    assert len(set(TEMPLATES) - omh) >= 2


@pytest.mark.parametrize("case", corpus("vendor", "accepted"))
def test_vendor_payloads_become_canonical_measurements(case: dict[str, Any]) -> None:
    """Each payload maps to the canonical code, value and unit, for the right patient."""
    readings = apply_template(TEMPLATES[case["template"]], case["payload"], received=RECEIVED)
    assert _canonical(readings) == case["expect"]
    assert {r.measurement.patient_value for r in readings} == {SYNTHETIC_FNR}
    assert all(r.measurement.source == case["template"] for r in readings)


@pytest.mark.parametrize("case", corpus("vendor", "rejected"))
def test_vendor_rejections_name_the_rule_or_element(
    client: TestClient, case: dict[str, Any]
) -> None:
    """A failed rule or a bad element answers with its status and the vendor JSONPath."""
    response = client.post(
        f"/ingest/{case['template']}",
        content=orjson.dumps(case["payload"]),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == case["status"]
    issue = response.json()["issue"][0]
    assert case["message"] in issue["diagnostics"]
    assert issue.get("expression") == ([case["expression"]] if case["expression"] else None)
    assert SYNTHETIC_FNR[:-1] not in response.text


def test_resending_a_vendor_payload_gives_the_same_observations(
    client: TestClient, publisher: FakePublisher
) -> None:
    """The vendor's reading id maps to the same observation ids; not yet stored, the resend is
    published again (storage merges it)."""
    payload = orjson.dumps(load_case("Nordic hub batch of three kinds")["payload"])
    headers = {"Content-Type": "application/json"}
    first = client.post("/ingest/nordic-hub", content=payload, headers=headers)
    second = client.post("/ingest/nordic-hub", content=payload, headers=headers)
    assert (first.status_code, second.status_code) == (201, 201)
    locations = [[e["response"]["location"] for e in r.json()["entry"]] for r in (first, second)]
    assert locations[0] == locations[1]
    assert len(publisher.published) == 6


def test_templates_are_listed(client: TestClient) -> None:
    """GET /ingest/templates lists every template with its codes."""
    listed = client.get("/ingest/templates").json()["templates"]
    assert {t["name"] for t in listed} == set(TEMPLATES)
    assert all(t["description"] and t["codes"] for t in listed)


def test_a_malformed_template_names_its_file(tmp_path: Path) -> None:
    """A template without its measurements fails loading with the file name."""
    (tmp_path / "broken.yaml").write_text("name: broken\npatient: {system: x, value: $.p}\n")
    with pytest.raises(TemplateError, match=r"broken\.yaml"):
        load_templates(tmp_path)


def load_case(doc: str) -> dict[str, Any]:
    """One case of the vendor corpus by its doc."""
    return next(c.values[0] for c in corpus("vendor", "accepted") if c.id == doc)


@pytest.fixture(scope="module")
def _app(issuer: DevIssuer) -> Iterator[tuple[TestClient, FakePublisher]]:
    fake = FakePublisher()
    with offline_api(fake, issuer) as test_client:
        yield test_client, fake


@pytest.fixture
def publisher(_app: tuple[TestClient, FakePublisher]) -> FakePublisher:
    """The fake broker, emptied for each test."""
    _app[1].published = []
    return _app[1]


@pytest.fixture
def client(_app: tuple[TestClient, FakePublisher], publisher: FakePublisher) -> TestClient:
    """The API with a fake broker and an empty store."""
    state = _app[0].app.state  # type: ignore[attr-defined]
    state.receiver = dataclasses.replace(state.receiver, recent=RecentIds(), known=FakeStore(set()))
    return _app[0]


def test_every_template_shows_an_example_it_takes() -> None:
    """Each template carries an example payload, and the template maps it without error."""
    for template in TEMPLATES.values():
        assert template.example is not None, template.name
        readings = apply_template(template, template.example, received=RECEIVED)
        assert readings, template.name
