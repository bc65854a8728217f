"""The pages' rules that need no browser: every page needs a session, /dev/* exists only in
development, forms need the CSRF token, return targets stay on the site, and the chart draws
what it is given."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from api.auth.middleware import is_page
from api.main import create_app
from api.web import board, login, patient
from api.web.charts import BandRange, Point, Series, line_chart
from api.web.format import age, date_time, number
from api.web.login import _local
from infra.devissuer import DevIssuer
from tests.helpers import settings_trusting
from tests.unit.offline import offline_api

# Pages that a person without a session may open: the login itself and its callback.
OPEN_PAGES = {"/", "/web/", "/web/logg-inn/{who}", "/web/innlogging/tilbake", "/dev/login"}


class _Nowhere:
    """A publisher the pages never use."""

    async def publish(self, topic: str, records: Any) -> None:
        raise AssertionError("a page must not publish")

    async def ping(self) -> bool:
        return True


@pytest.fixture(scope="module")
def bare(issuer: DevIssuer) -> Iterator[TestClient]:
    """The app without a database, and a browser without a session cookie."""
    with offline_api(_Nowhere(), issuer) as client:
        client.auth = None
        yield client


def _page_routes() -> list[tuple[str, str]]:
    routers = (login.router, login.dev_router, board.router, patient.router)
    return [
        (method, route.path)
        for router in routers
        for route in router.routes
        if isinstance(route, APIRoute) and route.path not in OPEN_PAGES
        for method in route.methods
    ]


def test_no_api_route_is_a_page_path(bare: TestClient) -> None:
    """The DPoP middleware lets page paths through, so no OpenAPI route may be one."""
    paths = bare.get("/openapi.json").json()["paths"]
    assert [p for p in paths if is_page(p)] == []


def test_every_page_needs_a_session(bare: TestClient) -> None:
    """Without a session each page sends the browser to the login (GET) or answers 401."""
    routes = _page_routes()
    assert all(is_page(path) for _, path in routes)
    assert len(routes) >= 8
    for method, path in routes:
        concrete = re.sub(r"\{[^}]+\}", "x", path)
        answer = bare.request(method, concrete, follow_redirects=False)
        expected = {303} if method == "GET" else {401}
        assert answer.status_code in expected, f"{method} {path}: {answer.status_code}"
        if method == "GET":
            assert answer.headers["location"].startswith("/web/?neste=")


def test_a_form_without_the_csrf_token_is_refused(bare: TestClient) -> None:
    """A state-changing page request from another site is refused before anything else."""
    answer = bare.post("/web/varsler/x/kvitter", headers={"Origin": "https://evil.example"})
    assert answer.status_code == 401  # no session: refused; with one, CsrfError (403)


@pytest.mark.parametrize(
    ("target", "kept"),
    [("/web/tavle", "/web/tavle"), ("https://evil.example/web/", ""), ("//evil.example", ""),
     ("/api/v1/board", ""), ("/web/pasient/1?periode=7d", "/web/pasient/1?periode=7d")],
)  # fmt: skip
def test_only_a_page_of_this_site_is_a_return_target(target: str, kept: str) -> None:
    """``neste`` cannot send the browser elsewhere after login (no open redirect)."""
    assert _local(target) == kept


def test_dev_login_exists_only_with_the_development_issuer(
    bare: TestClient, issuer: DevIssuer
) -> None:
    """/dev/login is served in development with the local issuer, and 404 otherwise."""
    assert bare.get("/dev/login?role=nurse", follow_redirects=False).status_code != 404
    real = settings_trusting(
        issuer, kafka_bootstrap="k:1", database_url="postgresql://x@h/db",
        helseid_authority="https://helseid-sts.nhn.no", citizen_authority="https://idporten.no",
    )  # fmt: skip
    paths = [getattr(r, "path", "") for r in create_app(real, expected_migrations=()).routes]
    assert [p for p in paths if p.startswith("/dev/")] == []


def test_the_chart_draws_every_point_and_the_bands_behind() -> None:
    """Three points make a three-point line, drawn after (over) the bands."""
    start = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    points = [Point(start + dt.timedelta(hours=h), v) for h, v in ((1, 70), (2, 95), (3, 120))]
    svg = line_chart(
        title="Puls", series=[Series("Puls", "line-a", points)], start=start,
        end=start + dt.timedelta(hours=4), y_range=(40, 140), chart_id="c",
        bands=[BandRange(91, 111, 1)],
    )  # fmt: skip
    assert 'data-series="Puls" data-points="3"' in svg
    assert svg.index("band-1") < svg.index("polyline")
    assert len(re.findall(r"<circle", svg)) == 3


def test_norwegian_formats() -> None:
    """Decimal comma, Europe/Oslo wall time (summer and winter), ages in words."""
    assert number(37.26, 1) == "37,3"
    assert number(-1.5, 1) == "−1,5"
    assert date_time(dt.datetime(2026, 1, 5, 12, 0, tzinfo=dt.UTC)) == "05.01.2026 kl. 13:00"
    assert date_time(dt.datetime(2026, 7, 5, 12, 0, tzinfo=dt.UTC)) == "05.07.2026 kl. 14:00"
    assert (age(30), age(125 * 60), age(3 * 86400)) == ("under 1 min", "2 t 5 min", "3 d")
