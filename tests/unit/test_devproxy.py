"""The development proxy signs what it forwards as the role the request needs, keeps the client's
Host (so the API's links point back at the proxy), serves only its loopback Host, and runs only
in development."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from api.auth.principals import SCOPE_PREFIX
from infra.devissuer import DevIssuer
from infra.devproxy import create_dev_proxy, signing_role
from infra.settings import UpSettings


@pytest.mark.parametrize(
    ("method", "path", "role"),
    [
        ("POST", "/fhir", "hub"),
        ("POST", "/fhir/", "hub"),
        ("POST", "/fhir/Observation", "hub"),
        ("POST", "/ingest/omh-heart-rate", "hub"),
        ("POST", "/fhir/Observation/_search", "nurse"),
        ("GET", "/fhir/Observation", "nurse"),
        ("GET", "/fhir/metadata", "nurse"),
        ("PUT", "/api/v1/patients/news2-settings", "nurse"),
        ("POST", "/api/v1/alerts/x/acknowledge", "nurse"),
    ],
)
def test_readings_sent_in_go_as_the_hub_and_the_rest_as_the_reader(
    method: str, path: str, role: str
) -> None:
    """Only a POST of readings (Bundle, Observation, vendor template) is signed as the hub."""
    assert signing_role(method, path) == role


def _echo(request: Request) -> JSONResponse:
    return JSONResponse(
        {
            "method": request.method,
            "path": request.scope["raw_path"].decode(),
            "query": request.url.query,
            "host": request.headers["host"],
            "authorization": request.headers.get("authorization"),
            "dpop": request.headers.get("dpop"),
        },
        headers={"Location": "Observation/1", "Connection": "close"},
    )


def _through_proxy(
    tmp_path: Path,
    method: str,
    url: str,
    *,
    upstream: Callable[[Request], JSONResponse] = _echo,
    **kwargs: Any,
) -> httpx.Response:
    api = Starlette(routes=[Route("/{p:path}", upstream, methods=["GET", "POST", "PUT"])])
    transport = httpx.ASGITransport(app=api)
    proxy = create_dev_proxy(
        "http://127.0.0.1:8080", DevIssuer.ensure(tmp_path), port=8081, transport=transport
    )
    with TestClient(proxy, base_url="http://127.0.0.1:8081") as client:
        return client.request(method, url, **kwargs)


def _claims(token: str, key: ECKey | None = None) -> dict[str, Any]:
    if key is None:  # a proof carries its public key
        header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
        key = ECKey.import_key(header["jwk"])
    return dict(jwt.decode(token, key).claims)


def test_a_read_is_signed_as_the_nurse_for_the_url_the_client_used(tmp_path: Path) -> None:
    """The client's credentials are replaced; the proof's htu is the proxy's URL (the Host the
    API sees), with the path as sent; the query is passed on."""
    answer = _through_proxy(
        tmp_path,
        "GET",
        "/fhir/Observation/$lastn?patient.identifier=1&code=a%7Cb",
        headers={"Authorization": "Bearer mine", "DPoP": "mine"},
    )
    seen = answer.json()
    assert (seen["path"], seen["query"]) == (
        "/fhir/Observation/$lastn",
        "patient.identifier=1&code=a%7Cb",
    )
    assert seen["host"] == "127.0.0.1:8081"
    scheme, token = seen["authorization"].split()
    assert scheme == "DPoP"
    claims = _claims(token, DevIssuer.ensure(tmp_path).key)
    assert f"{SCOPE_PREFIX}read" in claims["scope"].split()
    proof = _claims(seen["dpop"])
    assert (proof["htm"], proof["htu"]) == ("GET", "http://127.0.0.1:8081/fhir/Observation/$lastn")
    assert answer.headers["location"] == "Observation/1"
    assert "connection" not in answer.headers


def test_a_reading_is_signed_as_the_hub(tmp_path: Path) -> None:
    """A POST of a Bundle goes with an ingest token, and its body unchanged."""
    seen = _through_proxy(tmp_path, "POST", "/fhir", json={"resourceType": "Bundle"}).json()
    token = seen["authorization"].split()[1]
    claims = _claims(token, DevIssuer.ensure(tmp_path).key)
    assert claims["scope"].split() == [f"{SCOPE_PREFIX}ingest"]
    assert _claims(seen["dpop"])["htm"] == "POST"


@pytest.mark.parametrize("host", ["127.0.0.1:8081", "localhost:8081", "[::1]:8081"])
def test_the_loopback_addresses_of_its_port_are_served(tmp_path: Path, host: str) -> None:
    """A client on 127.0.0.1, localhost or [::1] with the proxy's port gets through, signed for
    the URL it used."""
    answer = _through_proxy(tmp_path, "GET", "/fhir/metadata", headers={"Host": host})
    assert answer.status_code == 200
    assert _claims(answer.json()["dpop"])["htu"] == f"http://{host}/fhir/metadata"


@pytest.mark.parametrize(
    "host",
    [
        "rebind.example:8081",  # a page's own name, resolving to 127.0.0.1 (DNS rebinding)
        "127.0.0.1.nip.io:8081",
        "localhost.rebind.example:8081",
        "127.0.0.1:9999",
        "127.0.0.1",
        "localhost",
        "",
    ],
)
def test_any_other_host_is_refused_before_anything_is_signed(tmp_path: Path, host: str) -> None:
    """403 with an OperationOutcome naming Host; nothing reaches the API."""
    answer = _through_proxy(
        tmp_path, "GET", "/fhir/Observation", headers={"Host": host}, upstream=_unreachable
    )
    assert answer.status_code == 403
    assert answer.headers["content-type"].startswith("application/fhir+json")
    outcome = answer.json()
    assert outcome["resourceType"] == "OperationOutcome"
    [issue] = outcome["issue"]
    assert (issue["code"], issue["expression"]) == ("forbidden", ["Host"])
    assert "127.0.0.1:8081" in issue["diagnostics"]


def _unreachable(request: Request) -> JSONResponse:
    raise AssertionError("a refused request reached the API")


@pytest.mark.parametrize(
    ("settings", "allowed"),
    [
        ({}, True),
        ({"helseid_issuer": "http://127.0.0.1:8080/dev/issuer"}, True),
        ({"env": "production"}, False),
        ({"identity_mode": "production"}, False),
        ({"helseid_issuer": "https://helseid-sts.nhn.no"}, False),
    ],
)
def test_the_proxy_is_allowed_only_in_development(settings: dict[str, str], allowed: bool) -> None:
    """Development, synthetic identities, no issuer but the development one."""
    base = {"env": "development", "identity_mode": "test", "helseid_issuer": None}
    assert UpSettings(**(base | settings)).allows_dev_proxy is allowed
