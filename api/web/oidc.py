"""The OpenID Connect client the server runs for the browser: authorization code with pushed
authorization requests (RFC 9126), PKCE S256 (RFC 7636), private-key-JWT client authentication
and DPoP-bound tokens (RFC 9449) under a key of the server's own, one per login.

HelseID (staff) and ID-porten / Helsenorge (citizens) are two `Provider`s of the same shape; in
development both are the local issuer.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet

from api.auth.dpop import normalise_htu
from api.settings import ApiSettings
from ingestion.exceptions import UnavailableError

__all__ = ["LoginError", "OidcClient", "PendingLogin", "Provider", "providers_from"]

_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class LoginError(Exception):
    """The identity provider refused or answered what a login cannot use."""


@dataclass(frozen=True, slots=True)
class Provider:
    """One identity provider the pages log in with."""

    name: str  # staff | citizen
    authority: str
    client_id: str
    client_key_path: str
    scopes: str

    def client_key(self) -> ECKey:
        """The private key of the client assertion (read when needed: it may be rotated)."""
        return ECKey.import_key(json.loads(Path(self.client_key_path).read_text()))


def providers_from(settings: ApiSettings) -> dict[str, Provider]:
    """The configured providers, by name (a provider without all its settings is left out)."""
    found: dict[str, Provider] = {}
    for name, authority, client, key, scopes in (
        (
            "staff",
            settings.helseid_authority,
            settings.helseid_client_id,
            settings.helseid_client_key,
            settings.helseid_scopes,
        ),
        (
            "citizen",
            settings.citizen_authority,
            settings.citizen_client_id,
            settings.citizen_client_key,
            settings.citizen_scopes,
        ),
    ):
        if authority and client and key:
            found[name] = Provider(name, authority.rstrip("/"), client, key, scopes)
    return found


@dataclass(frozen=True, slots=True)
class PendingLogin:
    """A login pushed to the provider: where to send the browser, and what to keep."""

    authorize_url: str
    state: str
    code_verifier: str
    nonce: str
    dpop_key: dict[str, Any]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class OidcClient:
    """Talks to the providers; their discovery documents are cached for an hour."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http
        self._discovered: dict[str, tuple[float, dict[str, Any]]] = {}

    async def begin(
        self, provider: Provider, *, redirect_uri: str, extra: dict[str, str] | None = None
    ) -> PendingLogin:
        """Push the authorization request (PAR) and return where the browser goes next."""
        meta = await self._meta(provider)
        verifier, state, nonce = (secrets.token_urlsafe(48) for _ in range(3))
        dpop_key = ECKey.generate_key("P-256", private=True)
        form = {
            "response_type": "code",
            "client_id": provider.client_id,
            "redirect_uri": redirect_uri,
            "scope": provider.scopes,
            "state": state,
            "nonce": nonce,
            "code_challenge": _b64(hashlib.sha256(verifier.encode()).digest()),
            "code_challenge_method": "S256",
            "dpop_jkt": dpop_key.thumbprint(),  # RFC 9449 § 10: bind the code to our key
            **self._assertion(provider, meta["issuer"]),
            **(extra or {}),
        }
        answer = await self._post(meta["pushed_authorization_request_endpoint"], form)
        if answer.status_code not in (200, 201) or "request_uri" not in answer.json():
            raise LoginError(f"the pushed authorization request was refused ({answer.status_code})")
        query = urlencode(
            {"client_id": provider.client_id, "request_uri": answer.json()["request_uri"]}
        )
        return PendingLogin(
            f"{meta['authorization_endpoint']}?{query}",
            state,
            verifier,
            nonce,
            dpop_key.as_dict(private=True),
        )

    async def redeem(
        self,
        provider: Provider,
        *,
        code: str,
        redirect_uri: str,
        code_verifier: str,
        nonce: str,
        dpop_key: dict[str, Any],
    ) -> tuple[str, int]:
        """Exchange the code for a DPoP-bound access token; return it and its lifetime (s)."""
        meta = await self._meta(provider)
        endpoint = meta["token_endpoint"]
        key = ECKey.import_key(dpop_key)
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": code_verifier,
            "client_id": provider.client_id,
            **self._assertion(provider, meta["issuer"]),
        }
        answer = await self._post(endpoint, form, dpop=_proof(key, endpoint))
        nonce_hint = answer.headers.get("DPoP-Nonce")
        if answer.status_code == 400 and nonce_hint:  # the server wants its nonce in the proof
            form |= self._assertion(provider, meta["issuer"])
            answer = await self._post(endpoint, form, dpop=_proof(key, endpoint, nonce_hint))
        body = (
            answer.json()
            if answer.headers.get("content-type", "").startswith("application/json")
            else {}
        )
        if answer.status_code != 200 or str(body.get("token_type", "")).lower() != "dpop":
            raise LoginError(
                f"the token endpoint answered {answer.status_code} without a DPoP token"
            )
        await self._check_id_token(provider, meta, body.get("id_token"), nonce)
        return str(body["access_token"]), int(body.get("expires_in", 300))

    async def _check_id_token(
        self, provider: Provider, meta: dict[str, Any], id_token: Any, nonce: str
    ) -> None:
        if not isinstance(id_token, str):
            raise LoginError("the token response has no id_token")
        keys = (await self._get(meta["jwks_uri"])).json()
        try:
            claims = jwt.decode(
                id_token, KeySet.import_key_set(keys), algorithms=["ES256", "RS256", "PS256"]
            ).claims
        except (JoseError, ValueError) as exc:
            raise LoginError(f"the id_token does not verify ({type(exc).__name__})") from exc
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if (
            claims.get("iss") != meta["issuer"]
            or provider.client_id not in audiences
            or claims.get("nonce") != nonce
            or not isinstance(claims.get("exp"), int)
            or claims["exp"] < time.time()
        ):
            raise LoginError("the id_token is not for this login (iss, aud, nonce or exp)")

    def _assertion(self, provider: Provider, issuer: str) -> dict[str, str]:
        """private_key_jwt (RFC 7523): a short-lived assertion signed by the client's key."""
        key = provider.client_key()
        now = int(time.time())
        claims = {
            "iss": provider.client_id,
            "sub": provider.client_id,
            "aud": issuer,
            "iat": now,
            "exp": now + 60,
            "jti": str(uuid.uuid4()),
        }
        header = {"alg": "ES256", "typ": "client-authentication+jwt", "kid": key.kid}
        return {
            "client_assertion_type": _ASSERTION_TYPE,
            "client_assertion": jwt.encode(header, claims, key),
        }

    async def _meta(self, provider: Provider) -> dict[str, Any]:
        cached = self._discovered.get(provider.authority)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        meta: dict[str, Any] = (
            await self._get(f"{provider.authority}/.well-known/openid-configuration")
        ).json()
        needed = (
            "issuer",
            "pushed_authorization_request_endpoint",
            "authorization_endpoint",
            "token_endpoint",
            "jwks_uri",
        )
        if any(not meta.get(k) for k in needed) or meta["issuer"].rstrip("/") != provider.authority:
            raise LoginError("the provider's discovery document lacks PAR, token or keys")
        self._discovered[provider.authority] = (time.monotonic() + 3600, meta)
        return meta

    async def _get(self, url: str) -> httpx.Response:
        try:
            answer = await self._http.get(url)
        except httpx.HTTPError as exc:
            raise UnavailableError(
                "the identity provider cannot be reached", retry_after=5
            ) from exc
        if answer.status_code != 200:
            raise LoginError(f"the identity provider answered {answer.status_code} for {url}")
        return answer

    async def _post(
        self, url: str, form: dict[str, str], *, dpop: str | None = None
    ) -> httpx.Response:
        headers = {"DPoP": dpop} if dpop else {}
        try:
            return await self._http.post(url, data=form, headers=headers)
        except httpx.HTTPError as exc:
            raise UnavailableError(
                "the identity provider cannot be reached", retry_after=5
            ) from exc


def _proof(key: ECKey, url: str, nonce: str | None = None) -> str:
    """A DPoP proof for a token request (no access token yet, so no ``ath``)."""
    claims: dict[str, Any] = {
        "htm": "POST",
        "htu": normalise_htu(url),
        "iat": int(time.time()),
        "jti": str(uuid.uuid4()),
    }
    if nonce:
        claims["nonce"] = nonce
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": key.as_dict(private=False)}
    return jwt.encode(header, claims, key)
