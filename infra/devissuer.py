"""The development issuer: local keys that mint HelseID-shaped and citizen tokens, and the
DPoP client side (`DpopAuth`) that signs each request with a proof.

Only for development and tests: `malestrom up` creates it under the data directory when no
issuer is configured, and the API refuses it in production. Every identity it mints is
synthetic (fødselsnummer month + 65, organisation numbers of the 31… test series).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import time
import uuid
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import platformdirs
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet

from api.auth.dpop import normalise_htu
from api.auth.principals import (
    HPR_NUMBER,
    NAME,
    ORGNR_CHILD,
    ORGNR_PARENT,
    PID,
    SCOPE_PREFIX,
    SECURITY_LEVEL,
    TRUST_FRAMEWORK,
)
from api.settings import DEV_ISSUER_PATH
from ingestion.identifiers import synthetic_person_number

__all__ = [
    "DEV_AUDIENCE",
    "ROLES",
    "SIMULATED_HOSPITAL",
    "SIMULATED_ORGANISATION",
    "WEB_CLIENT_ID",
    "DevIssuer",
    "DpopAuth",
    "Minted",
    "RoleCredentials",
    "find_dev_issuer",
]

DEV_AUDIENCE = "nhn:malestrom"
WEB_CLIENT_ID = "malestrom-web"  # the pages' OpenID Connect client at this issuer
SIMULATED_ORGANISATION = "311000004"  # "Simulert hjemmetjeneste" (synthetic, mod-11 valid)
SIMULATED_HOSPITAL = "312000008"  # "Simulert sykehus"
_rng = random.Random(20261201)  # noqa: S311 - synthetic identities, not secrets
DEV_NURSE_PID = synthetic_person_number(_rng)
DEV_CLINICIAN_PID = synthetic_person_number(_rng)
DEV_ADMIN_PID = synthetic_person_number(_rng)

# role → (scopes, a person?, default organisation)
ROLES: dict[str, tuple[tuple[str, ...], bool, str | None]] = {
    "hub": (("ingest",), False, SIMULATED_ORGANISATION),
    "nurse": (("read", "alerts", "settings"), True, SIMULATED_ORGANISATION),
    "clinician": (("read",), True, SIMULATED_HOSPITAL),
    "citizen": (("citizen",), True, None),
    "admin": (("admin",), True, SIMULATED_ORGANISATION),
}


@dataclass(frozen=True, slots=True)
class Minted:
    """A token and the DPoP private key it is bound to."""

    token: str
    key: ECKey
    claims: dict[str, Any]

    def auth(self, *, public_url: str | None = None) -> DpopAuth:
        """An httpx ``auth`` that sends this token with a fresh proof on every request."""
        return DpopAuth(self.token, self.key, public_url=public_url)


@dataclass
class DevIssuer:
    """A signing key on disk and the issuer identifier its tokens carry."""

    directory: Path
    issuer: str
    key: ECKey = field(repr=False)

    @classmethod
    def ensure(cls, directory: Path, issuer: str | None = None) -> DevIssuer:
        """Load the issuer in ``directory``, creating its key the first time."""
        directory.mkdir(parents=True, exist_ok=True)
        key_file, meta_file = directory / "signing-key.jwk", directory / "issuer.json"
        if key_file.exists():
            key = ECKey.import_key(json.loads(key_file.read_text()))
        else:
            key = ECKey.generate_key("P-256", {"use": "sig", "alg": "ES256"}, auto_kid=True)
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as out:
                json.dump(key.as_dict(private=True), out)
        if issuer is None:
            issuer = json.loads(meta_file.read_text())["issuer"] if meta_file.exists() else None
        if issuer is None:
            issuer = f"http://127.0.0.1:8080{DEV_ISSUER_PATH}"
        _write_if_changed(meta_file, json.dumps({"issuer": issuer}))
        _write_if_changed(directory / "jwks.json", json.dumps(KeySet([key]).as_dict(private=False)))
        _private_key(directory / "web-client.jwk")  # the pages' client key (private-key JWT)
        return cls(directory, issuer, key)

    @property
    def jwks_path(self) -> Path:
        """The public JWKS file the API is configured with."""
        return self.directory / "jwks.json"

    @property
    def client_key_path(self) -> Path:
        """The private key with which the pages authenticate as this issuer's client."""
        return self.directory / "web-client.jwk"

    def client_key(self) -> ECKey:
        """The pages' client key (its public half verifies their client assertions)."""
        return ECKey.import_key(json.loads(self.client_key_path.read_text()))

    def env(self) -> dict[str, str]:
        """The API settings that trust this issuer for staff and citizen tokens, and log the
        pages in with it (as HelseID and ID-porten would)."""
        common = {
            "ISSUER": self.issuer,
            "JWKS": str(self.jwks_path),
            "AUTHORITY": self.issuer,
            "CLIENT_ID": WEB_CLIENT_ID,
            "CLIENT_KEY": str(self.client_key_path),
        }
        return {
            f"MALESTROM_{who}_{name}": value
            for who in ("HELSEID", "CITIZEN")
            for name, value in common.items()
        }

    def mint(
        self,
        role: str,
        *,
        org: str | None = None,
        pid: str | None = None,
        scopes: tuple[str, ...] | None = None,
        lifetime_s: int = 3600,
        audience: str = DEV_AUDIENCE,
        care_purpose: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Minted:
        """A DPoP-bound token for a role (``hub``, ``nurse``, ``clinician``, ``citizen``,
        ``admin``); ``extra`` claims override the defaults (None removes a claim)."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        default_scopes, person, default_org = ROLES[role]
        dpop_key = ECKey.generate_key("P-256", private=True)
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": audience,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime_s,
            "jti": str(uuid.uuid4()),
            "client_id": f"malestrom-dev-{role}",
            "scope": " ".join(SCOPE_PREFIX + s for s in (scopes or default_scopes)),
            "cnf": {"jkt": dpop_key.thumbprint()},
        }
        if role == "citizen":
            if pid is None:
                raise ValueError("a citizen token needs --pid (the person's fødselsnummer)")
            claims |= {"pid": pid, "acr": "Level4", "sub": pid}
        else:
            claims |= _staff_claims(role, person, org or default_org, pid, care_purpose)
        for name, value in (extra or {}).items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        header = {"alg": "ES256", "typ": "at+jwt", "kid": self.key.kid}
        return Minted(jwt.encode(header, claims, self.key), dpop_key, claims)


def find_dev_issuer(data_dir: Path | None = None) -> DevIssuer:
    """The development issuer `malestrom up` made: ``MALESTROM_DEV_ISSUER_DIR`` when set (and no
    ``data_dir`` given), else ``DATA/dev-issuer`` (``DATA``: ``data_dir``, else
    ``MALESTROM_DATA_DIR``, else `malestrom up`'s default data directory).

    Raises:
        FileNotFoundError: there is none there yet.
    """
    named = os.environ.get("MALESTROM_DEV_ISSUER_DIR")
    if named and data_dir is None:
        directory = Path(named)
    else:
        default = os.environ.get("MALESTROM_DATA_DIR") or platformdirs.user_data_dir("malestrom")
        directory = (data_dir or Path(default)) / "dev-issuer"
    if not (directory / "signing-key.jwk").exists():
        raise FileNotFoundError(
            f"no development issuer in {directory}; start `malestrom up` (development, no "
            "issuers configured) first, or give its data directory"
        )
    return DevIssuer.ensure(directory)


def _private_key(path: Path) -> None:
    """Create a private EC key file (mode 0600) unless it exists."""
    if path.exists():
        return
    key = ECKey.generate_key("P-256", {"use": "sig", "alg": "ES256"}, auto_kid=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(key.as_dict(private=True), out)


def _write_if_changed(path: Path, text: str) -> None:
    """Write ``text`` unless the file holds it already (the directory may be read-only)."""
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def _staff_claims(
    role: str, person: bool, org: str | None, pid: str | None, care_purpose: str | None
) -> dict[str, Any]:
    claims: dict[str, Any] = {}
    if org:
        claims[ORGNR_PARENT if role == "hub" else ORGNR_CHILD] = org
    if person:
        pid = pid or {"clinician": DEV_CLINICIAN_PID, "admin": DEV_ADMIN_PID}.get(
            role, DEV_NURSE_PID
        )
        claims |= {PID: pid, SECURITY_LEVEL: "4", "sub": hashlib.sha256(pid.encode()).hexdigest()}
        claims[NAME] = {"nurse": "Sykepleier Test", "clinician": "Lege Test"}.get(
            role, "Drift Test"
        )
        if role in ("nurse", "clinician"):
            claims[HPR_NUMBER] = "9144900" if role == "nurse" else "9144901"
    if role == "clinician" or care_purpose:
        claims["authorization_details"] = [
            {
                "type": TRUST_FRAMEWORK,
                "care_relationship": {
                    "purpose_of_use": {
                        "code": care_purpose or "TREAT",
                        "system": "urn:oid:2.16.840.1.113883.1.11.20448",
                    },
                    "decision_ref": {"id": f"dev-{uuid.uuid4()}", "user_selected": False},
                },
            }
        ]
    return claims


class DpopAuth(httpx.Auth):
    """Adds ``Authorization: DPoP <token>`` and a fresh proof to every request."""

    def __init__(self, token: str, key: ECKey, *, public_url: str | None = None) -> None:
        self.token = token
        self.key = key
        self._public_url = public_url.rstrip("/") if public_url else None
        digest = hashlib.sha256(token.encode()).digest()
        self._ath = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def proof(self, method: str, url: str, **overrides: Any) -> str:
        """A DPoP proof for ``method`` and ``url``; ``overrides`` change claims (tests)."""
        claims: dict[str, Any] = {
            "htm": method,
            "htu": normalise_htu(url),
            "iat": int(time.time()),
            "jti": str(uuid.uuid4()),
            "ath": self._ath,
        } | overrides
        header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": self.key.as_dict(private=False)}
        return jwt.encode(header, claims, self.key)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Sign the request (httpx calls this for each request)."""
        url = str(request.url)
        if self._public_url:
            url = self._public_url + request.url.path
        request.headers["Authorization"] = f"DPoP {self.token}"
        request.headers["DPoP"] = self.proof(request.method, url)
        yield request


class RoleCredentials:
    """A role's token from the development issuer, minted again well before it expires."""

    def __init__(
        self, issuer: DevIssuer, role: str, *, lifetime_s: int = 3600, **mint: Any
    ) -> None:
        self._issuer, self._role, self._lifetime_s, self._mint = issuer, role, lifetime_s, mint
        self._auth: DpopAuth | None = None
        self._minted = 0.0

    @property
    def role(self) -> str:
        """The role the tokens are minted for."""
        return self._role

    def auth(self) -> DpopAuth:
        """The current credentials (a fresh token after half its lifetime)."""
        now = time.monotonic()
        if self._auth is None or now - self._minted > self._lifetime_s / 2:
            minted = self._issuer.mint(self._role, lifetime_s=self._lifetime_s, **self._mint)
            self._auth, self._minted = minted.auth(), now
        return self._auth
