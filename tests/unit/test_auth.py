"""The resource server's rules that need no database: settings that refuse an unsafe
production, the DPoP URL comparison, the claims that make a principal, and that no route of
the API is reachable without a token."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from api.auth.dpop import normalise_htu
from api.auth.errors import ForbiddenError, InvalidTokenError
from api.auth.keys import JwksSource
from api.auth.middleware import PUBLIC_PATHS
from api.auth.principals import Kind, Scope, principal_from
from api.auth.tokens import Issuer, IssuerKind, VerifiedToken
from api.settings import ApiSettings, Environment
from infra.devissuer import DevIssuer
from ingestion.identifiers import IdentityMode
from tests.unit.offline import offline_api

BASE = {"kafka_bootstrap": "k:9092", "database_url": "postgresql://x@h/db"}
HELSEID = {"helseid_issuer": "https://helseid-sts.nhn.no", "helseid_jwks": "https://h/jwks"}
CITIZEN = {"citizen_issuer": "https://idporten.no", "citizen_jwks": "/etc/malestrom/idporten.json"}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({**HELSEID, "public_url": "https://m.example"}, "CITIZEN_ISSUER"),
        ({**CITIZEN, "public_url": "https://m.example"}, "HELSEID_ISSUER"),
        ({**HELSEID, **CITIZEN}, "https://"),
        ({**HELSEID, **CITIZEN, "public_url": "http://m.example"}, "https://"),
        (
            {**HELSEID, **CITIZEN, "public_url": "https://m.example",
             "citizen_issuer": "http://127.0.0.1:8080/dev/issuer"},
            "development issuer",
        ),
        ({**HELSEID, **CITIZEN, "public_url": "https://m.example", "helseid_jwks": "http://h/j"},
         "https://"),
    ],
)  # fmt: skip
def test_production_refuses_to_start_unsafely(fields: dict[str, str], message: str) -> None:
    """Production needs both issuers, never the development one, and an https public URL."""
    with pytest.raises(ValidationError, match=re.escape(message)):
        ApiSettings(**BASE, env=Environment.PRODUCTION, **fields)  # type: ignore[arg-type]


def test_production_starts_with_real_issuers() -> None:
    """Both issuers, their JWKS and an https public URL make a valid production setting."""
    settings = ApiSettings(
        **BASE, env=Environment.PRODUCTION, public_url="https://m.example", **HELSEID, **CITIZEN
    )  # type: ignore[arg-type]
    assert settings.audience == "nhn:malestrom"


@pytest.mark.parametrize(
    ("url", "normal"),
    [
        ("https://Malestrom.EXAMPLE:443/fhir/Observation?x=1#f", "https://malestrom.example/fhir/Observation"),
        ("HTTP://127.0.0.1:80/fhir", "http://127.0.0.1/fhir"),
        ("http://127.0.0.1:8080/fhir", "http://127.0.0.1:8080/fhir"),
        ("https://h.example:8443/A/b", "https://h.example:8443/A/b"),
        ("https://h.example", "https://h.example/"),
    ],
)  # fmt: skip
def test_htu_is_compared_without_query_case_or_default_port(url: str, normal: str) -> None:
    """Scheme and host lower-cased, the default port dropped, query and fragment ignored."""
    assert normalise_htu(url) == normal


def _verified(claims: dict[str, Any], *kinds: IssuerKind) -> VerifiedToken:
    issuer = Issuer("https://issuer.test", JwksSource("/nonexistent"), frozenset(kinds))
    return VerifiedToken(claims, issuer, b"")


STAFF = IssuerKind.STAFF
CITIZEN_KIND = IssuerKind.CITIZEN
NURSE = {
    "scope": "nhn:malestrom/read nhn:malestrom/alerts openid",
    "helseid://claims/identity/pid": "10705207645",
    "helseid://claims/identity/security_level": "4",
    "helseid://claims/hpr/hpr_number": "9144900",
    "helseid://claims/client/claims/orgnr_parent": "311000004",
    "helseid://claims/client/claims/orgnr_child": "312000008",
}


def test_a_nurse_token_makes_a_person_of_the_child_organisation() -> None:
    """Scopes are read from the prefix; the organisation is the child, else the parent."""
    principal = principal_from(_verified(NURSE, STAFF), mode=IdentityMode.TEST)
    assert principal.kind is Kind.PERSON
    assert principal.scopes == {Scope.READ, Scope.ALERTS}
    assert (principal.organisation, principal.parent_organisation) == ("312000008", "311000004")
    assert principal.actor == "HPR 9144900"


def test_a_citizen_token_needs_the_citizen_issuer_and_a_high_level() -> None:
    """The citizen scope from a staff-only issuer, or a substantial level, is refused."""
    claims = {"scope": "nhn:malestrom/citizen", "pid": "10705207645", "acr": "Level4"}
    assert (
        principal_from(_verified(claims, CITIZEN_KIND), mode=IdentityMode.TEST).kind is Kind.CITIZEN
    )
    with pytest.raises(InvalidTokenError, match="citizen issuer"):
        principal_from(_verified(claims, STAFF), mode=IdentityMode.TEST)
    with pytest.raises(InvalidTokenError, match="acr"):
        principal_from(_verified(claims | {"acr": "idporten-loa-substantial"}, CITIZEN_KIND),
                       mode=IdentityMode.TEST)  # fmt: skip
    with pytest.raises(ForbiddenError):
        principal_from(_verified(NURSE, CITIZEN_KIND), mode=IdentityMode.TEST)


def test_the_care_relationship_is_read_in_every_form_helseid_sends() -> None:
    """authorization_details as a list, a single object or a JSON string; purpose as object or
    code."""
    detail = {
        "type": "nhn:tillitsrammeverk:parameters",
        "care_relationship": {"purpose_of_use": "ETREAT", "decision_ref": {"id": "d-1"}},
    }
    for form in ([detail], detail, __import__("json").dumps([detail])):
        principal = principal_from(
            _verified(NURSE | {"authorization_details": form}, STAFF), mode=IdentityMode.TEST
        )
        assert principal.care is not None
        assert (principal.care.purpose, principal.care.decision_ref, principal.care.treats) == (
            "ETREAT", "d-1", True,
        )  # fmt: skip


@pytest.fixture(scope="module")
def bare(issuer: DevIssuer) -> Iterator[TestClient]:
    """The API without a broker or database, and requests without credentials."""

    class _Nothing:
        async def publish(self, topic: str, records: Any) -> None:
            raise AssertionError("an unauthenticated request must not publish")

        async def ping(self) -> bool:
            return True

    with offline_api(_Nothing(), issuer) as client:
        client.auth = None  # type: ignore[assignment]
        yield client


def _routes(client: TestClient) -> list[tuple[str, str]]:
    """Every operation the OpenAPI document lists, with path parameters filled in."""
    paths = client.get("/openapi.json").json()["paths"]
    return [
        (method.upper(), re.sub(r"\{[^}]+\}", "00000000-0000-4000-8000-000000000000", path))
        for path, operations in paths.items()
        if path not in PUBLIC_PATHS
        for method in operations
    ]


def test_no_route_answers_without_a_token(bare: TestClient) -> None:
    """Every route but health, metadata and the docs answers 401 with a DPoP challenge."""
    routes = _routes(bare)
    assert len(routes) >= 20
    for method, path in routes:
        answer = bare.request(method, path)
        assert answer.status_code == 401, f"{method} {path}: {answer.status_code}"
        assert answer.headers["WWW-Authenticate"].startswith('DPoP error="invalid_token"')


ADMIN_ONLY = {
    ("GET", "/fhir/AuditEvent"),
    ("PUT", "/api/v1/organisations/{org_id}"),
    ("GET", "/metrics"),
}


def test_every_route_checks_a_scope(bare: TestClient, issuer: DevIssuer) -> None:
    """An operator's token (scope admin only) is refused with insufficient_scope everywhere but
    the operators' routes: no route is merely authenticated."""
    paths = bare.get("/openapi.json").json()["paths"]
    for path, operations in paths.items():
        for method in operations:
            if path in PUBLIC_PATHS or (method.upper(), path) in ADMIN_ONLY:
                continue
            concrete = re.sub(r"\{[^}]+\}", "00000000-0000-4000-8000-000000000000", path)
            answer = bare.request(method, concrete, auth=issuer.mint("admin").auth())
            assert answer.status_code == 403, f"{method} {path}: {answer.status_code}"
            assert 'error="insufficient_scope"' in answer.headers["WWW-Authenticate"]
