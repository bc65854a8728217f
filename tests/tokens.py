"""Issuers and DPoP proofs built by the tests themselves (not by the development issuer), so
that every check of the resource server can be made to fail alone.

A `TestIssuer` has its own key (RSA or EC) and JWKS file; `TokenRequest` holds everything one
request carries (token header and claims, proof header and claims, the keys that sign them)
so that a negative case changes exactly one thing.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from joserfc import jws
from joserfc.jwk import ECKey, KeySet, RSAKey

from api.auth.principals import (
    HPR_NUMBER,
    ORGNR_CHILD,
    ORGNR_PARENT,
    PID,
    SECURITY_LEVEL,
    TRUST_FRAMEWORK,
)

__all__ = ["AUDIENCE", "TestIssuer", "TokenRequest", "b64url", "care_relationship", "sign"]

AUDIENCE = "nhn:malestrom"
Key = RSAKey | ECKey


def b64url(data: bytes) -> str:
    """Base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign(header: dict[str, Any], claims: dict[str, Any] | bytes, key: Key | None) -> str:
    """A compact JWS of ``claims`` under ``header``, signed by ``key`` with ``header['alg']``
    (any algorithm, including the ones the server must refuse; ``None`` key: unsigned)."""
    payload = claims if isinstance(claims, bytes) else json.dumps(claims).encode()
    if key is None:
        return f"{b64url(json.dumps(header).encode())}.{b64url(payload)}."
    registry = jws.JWSRegistry(algorithms=[header["alg"]])
    registry.max_header_length = 8192
    return jws.serialize_compact(header, payload, key, registry=registry)


@dataclass
class TestIssuer:
    """An issuer of the test's own: a name, a signing key and its JWKS file."""

    name: str
    key: Key
    jwks: Path

    __test__ = False  # not a test class, for pytest

    @classmethod
    def create(cls, directory: Path, name: str, *, kind: str = "RSA") -> TestIssuer:
        """A fresh issuer whose JWKS is written to ``directory``."""
        key: Key = (
            RSAKey.generate_key(2048, {"alg": "RS256"}, auto_kid=True)
            if kind == "RSA"
            else ECKey.generate_key("P-256", {"alg": "ES256"}, auto_kid=True)
        )
        directory.mkdir(parents=True, exist_ok=True)
        jwks = directory / f"{uuid.uuid4().hex[:8]}-jwks.json"
        jwks.write_text(json.dumps(KeySet([key]).as_dict(private=False)))
        return cls(name, key, jwks)

    @property
    def alg(self) -> str:
        """The algorithm this issuer signs with."""
        return "RS256" if isinstance(self.key, RSAKey) else "ES256"

    def staff(self, *, org: str, scopes: str, person: bool = True, **claims: Any) -> TokenRequest:
        """A HelseID-shaped request: a person at level 4 (or a system) of ``org``."""
        base: dict[str, Any] = {"client_id": "test-client", ORGNR_CHILD: org, "scope": scopes}
        if person:
            base |= {PID: claims.pop("pid", "10705207645"), SECURITY_LEVEL: "4"}
            base[HPR_NUMBER] = claims.pop("hpr", "9144910")
        else:
            base = {"client_id": "test-hub", ORGNR_PARENT: org, "scope": scopes}
        return self._request(base | claims)

    def citizen(self, *, pid: str, **claims: Any) -> TokenRequest:
        """An ID-porten / Helsenorge-shaped request of the person ``pid``."""
        base = {"pid": pid, "acr": "idporten-loa-high", "scope": "nhn:malestrom/citizen"}
        return self._request(base | claims)

    def _request(self, claims: dict[str, Any]) -> TokenRequest:
        now = int(time.time())
        token_claims = {
            "iss": self.name,
            "aud": AUDIENCE,
            "iat": now,
            "nbf": now,
            "exp": now + 600,
            "jti": str(uuid.uuid4()),
            **claims,
        }
        header = {"alg": self.alg, "typ": "at+jwt", "kid": self.key.kid}
        return TokenRequest(token_header=header, token_claims=token_claims, token_key=self.key)


def care_relationship(purpose: str = "TREAT", decision: str = "beslutning-1") -> list[Any]:
    """``authorization_details`` of the trust framework with a care relationship."""
    return [
        {
            "type": TRUST_FRAMEWORK,
            "care_relationship": {
                "purpose_of_use": {
                    "code": purpose,
                    "system": "urn:oid:2.16.840.1.113883.1.11.20448",
                },
                "decision_ref": {"id": decision, "user_selected": False},
            },
        }
    ]


@dataclass
class TokenRequest:
    """Everything one authenticated request carries; change one field, break one check."""

    token_header: dict[str, Any]
    token_claims: dict[str, Any]
    token_key: Key | None
    proof_key: Key = field(default_factory=lambda: ECKey.generate_key("P-256", private=True))
    proof_header: dict[str, Any] = field(default_factory=dict)
    proof_claims: dict[str, Any] = field(default_factory=dict)
    proof_signer: Key | None = None  # signs the proof instead of proof_key when set
    scheme: str = "DPoP"
    token_override: str | None = None  # the exact Authorization credential, when set
    proofs_override: list[str] | None = None  # the exact DPoP header values, when set
    bind: bool = True  # put the proof key's thumbprint in cnf.jkt

    def copy(self) -> TokenRequest:
        """An independent copy (each case changes its own)."""
        return copy.deepcopy(self)

    def token(self) -> str:
        """The access token."""
        if self.token_override is not None:
            return self.token_override
        claims = dict(self.token_claims)
        if self.bind and "cnf" not in claims:
            claims["cnf"] = {"jkt": self.proof_key.thumbprint()}
        return sign(self.token_header, claims, self.token_key)

    def headers(self, method: str, url: str) -> dict[str, Any]:
        """The ``Authorization`` and ``DPoP`` headers for a request to ``url``."""
        token = self.token()
        if self.proofs_override is not None:
            proofs = self.proofs_override
        else:
            proofs = [self.proof(method, url, token)]
        return {"Authorization": f"{self.scheme} {token}".strip(), "DPoP": proofs}

    def proof(self, method: str, url: str, token: str) -> str:
        """The DPoP proof for this request."""
        alg = "RS256" if isinstance(self.proof_key, RSAKey) else "ES256"
        header: dict[str, Any] = {
            "typ": "dpop+jwt",
            "alg": alg,
            "jwk": self.proof_key.as_dict(private=False),
        } | self.proof_header
        claims: dict[str, Any] = {
            "htm": method,
            "htu": url.split("?")[0],
            "iat": int(time.time()),
            "jti": str(uuid.uuid4()),
            "ath": b64url(hashlib.sha256(token.encode()).digest()),
        } | self.proof_claims
        claims = {k: v for k, v in claims.items() if v is not None}
        header = {k: v for k, v in header.items() if v is not None}
        return sign(header, claims, self.proof_signer or self.proof_key)

    def send(
        self, client: httpx.Client, method: str, path: str, *, public_url: str, **kwargs: Any
    ) -> httpx.Response:
        """Send the request to ``client`` (its proof made for ``public_url`` + ``path``)."""
        headers = self.headers(method, public_url + path)
        proofs = headers.pop("DPoP")
        headers |= kwargs.pop("headers", None) or {}
        request = client.build_request(method, path, headers=headers, **kwargs)
        raw = [*request.headers.multi_items(), *(("DPoP", p) for p in proofs)]
        request.headers = httpx.Headers(raw)  # zero, one or several DPoP headers, as the case says
        return client.send(request)
