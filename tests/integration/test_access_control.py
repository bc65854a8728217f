"""Access control of the running system, as NHN's rules require it.

Two API processes (sharing one database, behind one public URL) trust two issuers the test
makes itself: a HelseID-shaped staff issuer (RSA) and a citizen issuer (EC). Organisation A's
hub sends readings of patient P1, organisation B's hub of patient P2. Then: every check of
the token and of the DPoP proof fails alone with 401 and the right challenge; scopes,
organisations and persons are enforced with 403; every read is in the access log, which the
citizen reads; a proof used on one replica is refused by the other.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
import pytest
from joserfc.jwk import ECKey, OctKey, RSAKey

from api.auth.principals import HPR_NUMBER, PID, SECURITY_LEVEL
from infra.processes import free_port, spawn, stop, wait_for_port
from infra.topics import ensure_topics
from ingestion.topics import Topics
from tests.helpers import bundle, eventually, fresh_fnr, fresh_orgnr, observation
from tests.integration.conftest import Worker
from tests.tokens import TestIssuer, TokenRequest, care_relationship, sign

pytestmark = pytest.mark.integration

PUBLIC_URL = "https://malestrom.test"
FHIR = {"Content-Type": "application/fhir+json"}
SCOPE = "nhn:malestrom/"


@dataclass
class System:
    """The running system and the people in it."""

    staff: TestIssuer
    citizens: TestIssuer
    urls: list[str]  # two API replicas
    database_url: str
    org_a: str
    org_b: str
    hospital: str
    p1: str  # a patient of A, also the citizen
    p2: str  # a patient of B

    def client(self, replica: int = 0) -> httpx.Client:
        return httpx.Client(base_url=self.urls[replica], timeout=30.0)

    def nurse(self, org: str | None = None, **claims: Any) -> TokenRequest:
        scopes = f"{SCOPE}read {SCOPE}alerts {SCOPE}settings"
        return self.staff.staff(org=org or self.org_a, scopes=scopes, **claims)

    def hub(self, org: str | None = None) -> TokenRequest:
        return self.staff.staff(org=org or self.org_a, scopes=f"{SCOPE}ingest", person=False)

    def citizen(self, pid: str | None = None, **claims: Any) -> TokenRequest:
        return self.citizens.citizen(pid=pid or self.p1, **claims)

    def call(
        self, who: TokenRequest, method: str, path: str, *, replica: int = 0, **kwargs: Any
    ) -> httpx.Response:
        with self.client(replica) as client:
            return who.send(client, method, path, public_url=PUBLIC_URL, **kwargs)


def _api(env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = spawn(
        [sys.executable, "-m", "infra.cli", "api", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        log=log,
    )
    wait_for_port("127.0.0.1", port, timeout=60, alive=lambda: proc.poll() is None)
    return proc, f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def system(
    kafka_bootstrap: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[System]:
    """A worker and two API replicas on this module's topics, with readings of P1 and P2."""
    tmp = tmp_path_factory.mktemp("access")
    topics = Topics(f"test-{uuid.uuid4().hex[:12]}")
    ensure_topics(kafka_bootstrap, topics, partitions=2)
    staff = TestIssuer.create(tmp, "https://helseid-sts.test.nhn.no", kind="RSA")
    citizens = TestIssuer.create(tmp, "https://login.idporten.test", kind="EC")
    env = {
        **os.environ,
        "MALESTROM_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "MALESTROM_DATABASE_URL": database_url,
        "MALESTROM_TOPIC_PREFIX": topics.prefix,
        "MALESTROM_APP_ID": f"{topics.prefix}-streams",
        "MALESTROM_BROKER_SESSION_TIMEOUT": "6",
        "MALESTROM_HELSEID_ISSUER": staff.name,
        "MALESTROM_HELSEID_JWKS": str(staff.jwks),
        "MALESTROM_CITIZEN_ISSUER": citizens.name,
        "MALESTROM_CITIZEN_JWKS": str(citizens.jwks),
        "MALESTROM_PUBLIC_URL": PUBLIC_URL,
    }
    worker = Worker(env, tmp / "worker.log")
    worker.start()
    apis = [_api(env, tmp / f"api-{i}.log") for i in range(2)]
    try:
        found = System(
            staff, citizens, [u for _, u in apis], database_url,
            fresh_orgnr(), fresh_orgnr(), fresh_orgnr(), fresh_fnr(), fresh_fnr(),
        )  # fmt: skip
        for org, pid in ((found.org_a, found.p1), (found.org_b, found.p2)):
            body = orjson.dumps(bundle(observation(fnr=pid), identifier=str(uuid.uuid4())))
            answer = found.call(found.hub(org), "POST", "/fhir", content=body, headers=FHIR)
            assert answer.status_code == 200, answer.text
        for org, pid in ((found.org_a, found.p1), (found.org_b, found.p2)):
            eventually(
                lambda org=org, pid=pid: _entries(found, found.nurse(org), pid),
                timeout=90,
                what="the readings stored",
            )
        yield found
    finally:
        for proc, _ in apis:
            stop(proc)
        worker.stop()


def _search(pid: str) -> str:
    return f"/fhir/Observation?patient.identifier={pid}"


def _entries(system: System, who: TokenRequest, pid: str) -> list[Any]:
    answer = system.call(who, "GET", _search(pid))
    assert answer.status_code == 200, answer.text
    entries: list[Any] = answer.json().get("entry", [])
    return entries


# --- 401: each check of the token or the proof failing alone ---------------------------------

Case = Callable[[TokenRequest, System], None]


def _claims(**changes: Any) -> Case:
    def change(r: TokenRequest, _s: System) -> None:
        for name, value in changes.items():
            if value is None:
                r.token_claims.pop(name, None)
            else:
                r.token_claims[name] = value

    return change


def _proof(**changes: Any) -> Case:
    def change(r: TokenRequest, _s: System) -> None:
        r.proof_claims.update(changes)  # None removes the claim

    return change


def _proof_header(**changes: Any) -> Case:
    def change(r: TokenRequest, _s: System) -> None:
        r.proof_header.update(changes)

    return change


def _set(**fields: Any) -> Case:
    def change(r: TokenRequest, _s: System) -> None:
        for name, value in fields.items():
            setattr(r, name, value)

    return change


def _hmac_token(r: TokenRequest, _s: System) -> None:
    r.token_header["alg"] = "HS256"
    r.token_key = OctKey.generate_key(256)  # type: ignore[assignment]


def _unsigned_token(r: TokenRequest, _s: System) -> None:
    r.token_header["alg"] = "none"
    r.token_key = None


def _foreign_key(r: TokenRequest, _s: System) -> None:
    kid = r.token_header["kid"]
    r.token_key = RSAKey.generate_key(2048, {"kid": kid})  # same kid, another key


def _citizen_key(r: TokenRequest, s: System) -> None:
    r.token_header.update(alg="ES256", kid=s.citizens.key.kid)
    r.token_key = s.citizens.key  # a key of the citizen issuer signing a staff token


def _unbound(r: TokenRequest, _s: System) -> None:
    r.bind = False


def _other_jkt(r: TokenRequest, _s: System) -> None:
    other = ECKey.generate_key("P-256", private=True)
    r.token_claims["cnf"] = {"jkt": other.thumbprint()}


def _proof_signed_by_other(r: TokenRequest, _s: System) -> None:
    r.proof_signer = ECKey.generate_key("P-256", private=True)


def _proof_private_jwk(r: TokenRequest, _s: System) -> None:
    r.proof_header["jwk"] = r.proof_key.as_dict(private=True)


def _proof_oct_jwk(r: TokenRequest, _s: System) -> None:
    r.proof_header["jwk"] = {"kty": "oct", "k": "c2VjcmV0"}


def _proof_hmac(r: TokenRequest, _s: System) -> None:
    r.proof_header["alg"] = "HS256"
    r.proof_signer = OctKey.generate_key(256)  # type: ignore[assignment]


def _proof_unsigned(r: TokenRequest, _s: System) -> None:
    r.proof_header["alg"] = "none"

    def proof(method: str, url: str, token: str) -> str:
        header = {"typ": "dpop+jwt", "alg": "none", "jwk": r.proof_key.as_dict(private=False)}
        return sign(header, {"htm": method, "htu": url, "iat": int(time.time())}, None)

    r.proof = proof  # type: ignore[method-assign]


def _two_proofs(r: TokenRequest, _s: System) -> None:
    original = r.headers

    def headers(method: str, url: str) -> dict[str, Any]:
        out = original(method, url)
        out["DPoP"] = out["DPoP"] * 2
        return out

    r.headers = headers  # type: ignore[method-assign]


TOKEN_CASES: dict[str, Case] = {
    "no Authorization header": _set(token_override="", scheme=""),
    "a Bearer token": _set(scheme="Bearer"),
    "an empty DPoP credential": _set(token_override=""),
    "a token that is not a JWS": _set(token_override="not-a-token"),
    "a token of two parts": _set(token_override="eyJhbGciOiJSUzI1NiJ9.e30"),
    "a token with alg none": _unsigned_token,
    "a token signed with HMAC": _hmac_token,
    "a token of typ dpop+jwt": lambda r, s: r.token_header.update(typ="dpop+jwt"),
    "a token without typ": lambda r, s: r.token_header.pop("typ"),
    "a token signed by another key with the issuer's kid": _foreign_key,
    "a token with an unknown kid": lambda r, s: r.token_header.update(kid="unknown-kid"),
    "a token of an untrusted issuer": _claims(iss="https://evil.example"),
    "a token without iss": _claims(iss=None),
    "a token for another audience": _claims(aud="nhn:other-api"),
    "a token for two audiences": _claims(aud=["nhn:malestrom", "nhn:other-api"]),
    "a token without aud": _claims(aud=None),
    "an expired token": lambda r, s: r.token_claims.update(exp=int(time.time()) - 60),
    "a token without exp": _claims(exp=None),
    "a token whose exp is text": _claims(exp="tomorrow"),
    "a token not valid yet": lambda r, s: r.token_claims.update(nbf=int(time.time()) + 300),
    "a token not bound to a key": _unbound,
    "a staff token signed with the citizen issuer's key": _citizen_key,
    "a staff token with the citizen scope": _claims(scope=f"{SCOPE}citizen {SCOPE}read"),
    "a person's token at security level 3": _claims(**{SECURITY_LEVEL: "3"}),
    "a person's token with a bad pid": _claims(**{PID: "10705207600"}),
    "a person's token with a non-synthetic pid": _claims(**{PID: "04427410043"}),  # an H-nummer
    "a user token without pid": _claims(**{PID: None}),
    "a token with a bad organisation number": _claims(
        **{"helseid://claims/client/claims/orgnr_child": "123456789"}
    ),
    "a token with a non-numeric HPR number": _claims(**{HPR_NUMBER: "HPR-12"}),
}

PROOF_CASES: dict[str, Case] = {
    "a proof whose key is not the one the token is bound to": _other_jkt,
    "no DPoP header": _set(proofs_override=[]),
    "two DPoP headers": _two_proofs,
    "a proof that is not a JWS": _set(proofs_override=["garbage"]),
    "a proof of typ JWT": _proof_header(typ="JWT"),
    "a proof with alg none": _proof_unsigned,
    "a proof signed with HMAC": _proof_hmac,
    "a proof without jwk": _proof_header(jwk=None),
    "a proof whose jwk holds the private key": _proof_private_jwk,
    "a proof whose jwk is a symmetric key": _proof_oct_jwk,
    "a proof signed by a key other than its jwk": _proof_signed_by_other,
    "a proof for another method": _proof(htm="POST"),
    "a proof for another path": _proof(htu=f"{PUBLIC_URL}/api/v1/board"),
    "a proof for another host": _proof(htu="https://other.test/fhir/Observation"),
    "a proof for http instead of https": _proof(htu="http://malestrom.test/fhir/Observation"),
    "a proof from two minutes ago": lambda r, s: r.proof_claims.update(iat=int(time.time()) - 120),
    "a proof from two minutes ahead": lambda r, s: r.proof_claims.update(
        iat=int(time.time()) + 120
    ),
    "a proof without iat": _proof(iat=None),
    "a proof for another token": _proof(ath="zNvJqfMdhoNJ8rrH3kGKtWb9XPRyvRaHlDNQGONNgtw"),
    "a proof without ath": _proof(ath=None),
    "a proof without jti": _proof(jti=None),
}


def _base(system: System) -> TokenRequest:
    return system.nurse()


@pytest.mark.parametrize("case", list(TOKEN_CASES), ids=list(TOKEN_CASES))
def test_a_failing_token_check_answers_401_invalid_token(system: System, case: str) -> None:
    """Each token check failing alone: 401, WWW-Authenticate DPoP invalid_token, no echo."""
    request = _base(system).copy()
    TOKEN_CASES[case](request, system)
    answer = system.call(
        request, "GET", "/fhir/Observation", params={"patient.identifier": system.p1}
    )
    _assert_refused(answer, 401, "invalid_token", request)


@pytest.mark.parametrize("case", list(PROOF_CASES), ids=list(PROOF_CASES))
def test_a_failing_proof_check_answers_401_invalid_dpop_proof(system: System, case: str) -> None:
    """Each proof check failing alone: 401, WWW-Authenticate DPoP invalid_dpop_proof."""
    request = _base(system).copy()
    PROOF_CASES[case](request, system)
    answer = system.call(
        request, "GET", "/fhir/Observation", params={"patient.identifier": system.p1}
    )
    _assert_refused(answer, 401, "invalid_dpop_proof", request)


def _assert_refused(answer: httpx.Response, status: int, error: str, r: TokenRequest) -> None:
    assert answer.status_code == status, answer.text
    challenge = answer.headers.get("WWW-Authenticate", "")
    assert challenge.startswith("DPoP ")
    assert f'error="{error}"' in challenge, challenge
    outcome = answer.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["diagnostics"]
    token = r.token_override if r.token_override is not None else None
    if token is None and r.token_key is not None:
        token = r.token()
    if token and len(token) > 20:
        assert token not in answer.text
        assert token not in challenge


def test_the_same_proof_twice_is_refused_by_the_other_replica(system: System) -> None:
    """A proof's jti is remembered in the shared database: replica 2 refuses what 1 accepted."""
    nurse = system.nurse()
    headers = nurse.headers("GET", f"{PUBLIC_URL}{_search(system.p1)}")
    headers["DPoP"] = headers["DPoP"][0]
    with system.client(0) as first, system.client(1) as second:
        assert first.get(_search(system.p1), headers=headers).status_code == 200
        replay = second.get(_search(system.p1), headers=headers)
        again = first.get(_search(system.p1), headers=headers)
    for answer in (replay, again):
        assert answer.status_code == 401
        assert 'error="invalid_dpop_proof"' in answer.headers["WWW-Authenticate"]
        assert "used before" in answer.json()["issue"][0]["diagnostics"]


# --- what is accepted ----------------------------------------------------------------------


def test_each_role_is_served(system: System) -> None:
    """A hub sends, a nurse reads her patient, a citizen reads themself, a hospital clinician
    with a care relationship reads, an operator searches the access log."""
    body = orjson.dumps(observation(fnr=system.p1, effective="2026-11-30T08:00:00+01:00"))
    sent = system.call(system.hub(), "POST", "/fhir/Observation", content=body, headers=FHIR)
    assert sent.status_code in (200, 201), sent.text
    assert _entries(system, system.nurse(), system.p1)
    mine = system.call(system.citizen(), "GET", "/api/v1/me/observations")
    assert mine.status_code == 200
    assert mine.json()["entry"]
    clinician = system.staff.staff(
        org=system.hospital, scopes=f"{SCOPE}read", authorization_details=care_relationship()
    )
    assert _entries(system, clinician, system.p1)
    admin = system.staff.staff(org=system.org_a, scopes=f"{SCOPE}admin")
    audit = system.call(admin, "GET", "/fhir/AuditEvent", params={"patient.identifier": system.p1})
    assert audit.status_code == 200
    assert audit.json()["entry"]


@pytest.mark.parametrize(
    "variant",
    ["aud as a one-element list", "typ JWT", "scope as a list", "an RSA-2048 proof key",
     "the default port and an upper-case host in htu", "a query string in htu"],
)  # fmt: skip
def test_equivalent_forms_are_accepted(system: System, variant: str) -> None:
    """Forms the rules allow are accepted: aud list, typ JWT, scope array, big keys, htu forms."""
    r = system.nurse()
    if variant == "aud as a one-element list":
        r.token_claims["aud"] = ["nhn:malestrom"]
    elif variant == "typ JWT":
        r.token_header["typ"] = "JWT"
    elif variant == "scope as a list":
        r.token_claims["scope"] = [f"{SCOPE}read"]
    elif variant == "an RSA-2048 proof key":
        r.proof_key = RSAKey.generate_key(2048, private=True)  # type: ignore[assignment]
    elif variant.startswith("the default port"):
        r.proof_claims["htu"] = "https://MALESTROM.test:443/fhir/Observation"
    else:
        r.proof_claims["htu"] = f"{PUBLIC_URL}/fhir/Observation?patient.identifier=x#frag"
    answer = system.call(r, "GET", "/fhir/Observation", params={"patient.identifier": system.p1})
    assert answer.status_code == 200, answer.text


# --- 403: the right caller, the wrong thing ------------------------------------------------


def test_scopes_are_enforced(system: System) -> None:
    """A hub cannot read, a reader cannot send or act, a system cannot act for a person."""
    hub, reader = system.hub(), system.staff.staff(org=system.org_a, scopes=f"{SCOPE}read")
    body = orjson.dumps(observation(fnr=system.p1))
    refused = [
        system.call(hub, "GET", _search(system.p1)),
        system.call(hub, "GET", "/api/v1/board"),
        system.call(reader, "POST", "/fhir/Observation", content=body, headers=FHIR),
        system.call(reader, "PUT", "/api/v1/patients/news2-settings",
                    json={"patient": {"value": system.p1}, "spo2_scale": 1}),
        system.call(reader, "GET", "/fhir/AuditEvent", params={"patient.identifier": system.p1}),
        system.call(system.nurse(), "GET", "/api/v1/me/observations"),
        system.call(system.staff.staff(org=system.org_a, scopes="openid profile"), "GET",
                    _search(system.p1)),
    ]  # fmt: skip
    for answer in refused:
        assert answer.status_code == 403, (answer.request.url, answer.text)
        assert 'error="insufficient_scope"' in answer.headers["WWW-Authenticate"]
    system_token = system.staff.staff(org=system.org_a, scopes=f"{SCOPE}settings", person=False)
    settings = {"patient": {"value": system.p1}, "organisation": system.org_a}
    answer = system.call(system_token, "PUT", "/api/v1/patients/news2-settings", json=settings)
    assert answer.status_code == 403
    assert "person" in answer.text


def test_a_nurse_sees_only_her_organisations_patients(system: System) -> None:
    """Nurse of A: P1 yes, P2 no (403), B's board no; her board and alerts hold only A."""
    nurse_a, nurse_b = system.nurse(system.org_a), system.nurse(system.org_b)
    assert system.call(nurse_a, "GET", _search(system.p2)).status_code == 403
    assert system.call(nurse_b, "GET", _search(system.p1)).status_code == 403
    assert (
        system.call(
            nurse_b, "GET", f"/fhir/Observation/$lastn?patient.identifier={system.p1}"
        ).status_code
        == 403
    )
    assert (
        system.call(
            nurse_a, "GET", "/api/v1/board", params={"organisation": system.org_b}
        ).status_code
        == 403
    )
    assert (
        system.call(
            nurse_a, "GET", "/api/v1/alerts", params={"organisation": system.org_b}
        ).status_code
        == 403
    )
    unknown = system.call(nurse_a, "GET", _search(fresh_fnr()))
    assert unknown.status_code == 403  # the same answer: whether someone is a patient is hidden
    treat_elsewhere = system.staff.staff(
        org=system.hospital, scopes=f"{SCOPE}read",
        authorization_details=care_relationship(purpose="HOPERAT"),
    )  # fmt: skip
    assert system.call(treat_elsewhere, "GET", _search(system.p1)).status_code == 403


def test_a_citizen_never_reaches_another_persons_data(system: System) -> None:
    """Citizen P1: own data everywhere under /me; P2's data and every staff view are refused."""
    citizen = system.citizen()
    for method, path in [
        ("GET", _search(system.p2)),
        ("GET", f"/fhir/Observation/$lastn?patient.identifier={system.p2}"),
        ("GET", f"/fhir/Observation/$stats?patient.identifier={system.p2}&code=8867-4"),
        ("GET", f"/api/v1/trends?patient.identifier={system.p2}&code=8867-4"
                "&from=2026-11-01&to=2026-11-30"),
        ("GET", "/api/v1/board"),
        ("GET", "/api/v1/alerts"),
        ("GET", "/api/v1/alerts/stream"),
        ("GET", f"/api/v1/patients/news2-settings?patient.identifier={system.p2}"),
        ("GET", f"/fhir/AuditEvent?patient.identifier={system.p2}"),
    ]:  # fmt: skip
        answer = system.call(citizen, method, path)
        assert answer.status_code == 403, f"{path}: {answer.status_code}"
        assert system.p2 not in answer.text
    own = system.call(citizen, "GET", _search(system.p1))
    assert own.status_code == 200
    assert own.json()["entry"]
    ignored = system.call(citizen, "GET", f"/api/v1/me/observations?patient.identifier={system.p2}")
    values = {e["resource"]["subject"]["identifier"]["value"] for e in ignored.json()["entry"]}
    assert values == {system.p1}
    export = system.call(citizen, "GET", "/api/v1/me/export")
    assert export.status_code == 200
    assert system.p2 not in export.text
    exported = export.json()
    assert exported["type"] == "collection"
    assert {e["resource"]["subject"]["identifier"]["value"] for e in exported["entry"]} == {
        system.p1
    }
    weak = system.citizen(acr="idporten-loa-substantial")
    assert system.call(weak, "GET", "/api/v1/me/observations").status_code == 401


# --- the access log --------------------------------------------------------------------------


def _records(system: System, correlation: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(system.database_url) as conn:
        return conn.execute(
            "SELECT action, role, actor_hpr, organisation, purpose, decision_ref, client_id"
            " FROM audit_events WHERE correlation_id = %s",
            (correlation,),
        ).fetchall()


def test_every_read_is_access_logged_and_the_citizen_sees_it(system: System) -> None:
    """A nurse's and a hospital clinician's reads are recorded with who and why; the citizen
    reads them at /api/v1/me/access-log, in words, without identity numbers."""
    nurse_read = str(uuid.uuid4())
    headers = {"correlation-id": nurse_read}
    assert (
        system.call(system.nurse(), "GET", _search(system.p1), headers=headers).status_code == 200
    )
    assert _records(system, nurse_read) == [
        ("search", "clinician", "9144910", system.org_a, None, None, "test-client")
    ]
    clinician_read = str(uuid.uuid4())
    clinician = system.staff.staff(
        org=system.hospital, scopes=f"{SCOPE}read", hpr="9144911",
        authorization_details=care_relationship(decision="vedtak-42"),
    )  # fmt: skip
    answer = system.call(
        clinician, "GET", _search(system.p1), headers={"correlation-id": clinician_read}
    )
    assert answer.status_code == 200
    assert _records(system, clinician_read) == [
        ("search", "clinician", "9144911", system.hospital, "TREAT", "vedtak-42", "test-client")
    ]
    log = system.call(system.citizen(), "GET", "/api/v1/me/access-log")
    assert log.status_code == 200
    entries = log.json()["entries"]
    hospital = next(
        e for e in entries if (e["organisation"] or {}).get("number") == system.hospital
    )
    assert hospital["who"].endswith("HPR-nummer 9144911")
    assert (hospital["why"], hospital["decision_ref"]) == (
        "Helsehjelp (behandlingsrelasjon)",
        "vedtak-42",
    )
    assert any((e["organisation"] or {}).get("number") == system.org_a for e in entries)
    assert "10705207645" not in log.text  # the nurse's own identity number is not shown
    own = system.call(system.citizen(), "GET", "/api/v1/me/access-log").json()["entries"]
    assert (own[0]["who"], own[0]["what"]) == (
        "Deg selv",
        "så hvem som har sett opplysningene dine",
    )


def test_a_refused_read_is_access_logged_and_the_citizen_sees_it(system: System) -> None:
    """A nurse of B trying P1's data is refused (403), and the refusal is recorded: who tried,
    with outcome denied, in the citizen's log and as an AuditEvent with a failure outcome."""
    attempt = str(uuid.uuid4())
    refused = system.call(
        system.nurse(system.org_b), "GET", _search(system.p1),
        headers={"correlation-id": attempt},
    )  # fmt: skip
    assert refused.status_code == 403
    with psycopg.connect(system.database_url) as conn:
        rows = conn.execute(
            "SELECT action, outcome, organisation, patient_key IS NOT NULL FROM audit_events"
            " WHERE correlation_id = %s",
            (attempt,),
        ).fetchall()
    assert rows == [("refused", "denied", system.org_b, True)]
    entries = system.call(system.citizen(), "GET", "/api/v1/me/access-log").json()["entries"]
    denied = [e for e in entries if e["outcome"] == "denied"]
    assert denied
    assert (denied[0]["organisation"] or {}).get("number") == system.org_b
    assert denied[0]["what"] == "ble nektet å se opplysninger om deg"
    admin = system.staff.staff(org=system.org_a, scopes=f"{SCOPE}admin")
    audit = system.call(
        admin, "GET", "/fhir/AuditEvent", params={"patient.identifier": system.p1}
    ).json()
    outcomes = {e["resource"]["outcomeDesc"]: e["resource"]["outcome"] for e in audit["entry"]}
    assert outcomes["denied"] == "4"
    other = system.call(system.citizen(pid=system.p2), "GET", _search(system.p1))
    assert other.status_code == 403
    entries = system.call(system.citizen(), "GET", "/api/v1/me/access-log").json()["entries"]
    newest_refusal = next(e for e in entries if e["outcome"] == "denied")  # newest first
    assert newest_refusal["who"] == "En annen innbygger"  # not "Deg selv"; no identity number
    assert system.p2 not in str(entries)


def test_acting_on_an_alert_needs_the_organisation_and_is_recorded(system: System) -> None:
    """Acknowledging an alert of another organisation is refused; an unknown alert is 404."""
    nurse_b = system.nurse(system.org_b)
    missing = system.call(nurse_b, "POST", f"/api/v1/alerts/{uuid.uuid4()}/acknowledge")
    assert missing.status_code == 404
