"""DPoP proofs (RFC 9449 § 4.3): the caller proves it holds the key its token is bound to,
for this request (method and URL), now, once."""

from __future__ import annotations

import base64
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson
from joserfc.errors import JoseError
from joserfc.jwk import JWKRegistry

from api.auth.errors import InvalidProofError
from api.auth.jose import open_compact, verify

__all__ = ["PROOF_WINDOW_S", "Proof", "ProofVerifier", "normalise_htu"]

PROOF_WINDOW_S = 60
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_KEY_TYPES = frozenset({"RSA", "EC"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
_KEY_CACHE_SIZE = 10_000


@dataclass(frozen=True, slots=True)
class Proof:
    """A proof that passed every check but replay: its ``jti`` and ``iat``."""

    jti: str
    iat: float


def normalise_htu(url: str) -> str:
    """A URL as DPoP compares it: no query or fragment, scheme and host lower-cased, no
    default port (RFC 9449 § 4.3, RFC 3986 § 6.2.2 and § 6.2.3)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    netloc = host if port is None or port == _DEFAULT_PORTS.get(scheme) else f"{host}:{port}"
    return urlunsplit((scheme, netloc, parts.path or "/", "", ""))


class ProofVerifier:
    """Checks a DPoP proof against the request and the access token it accompanies."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._keys: OrderedDict[str, tuple[Any, str]] = OrderedDict()  # jwk → key, thumbprint

    def verify(self, proof: str, *, method: str, url: str, token_sha256: bytes, jkt: str) -> Proof:
        """Verify ``proof`` for a request of ``method`` to ``url`` with the given token.

        Raises:
            InvalidProofError: saying which check failed.
        """
        opened = open_compact(proof, what="DPoP proof", error=InvalidProofError)
        if opened.header.get("typ") != "dpop+jwt":
            raise InvalidProofError("the DPoP proof's typ must be dpop+jwt")
        key, thumbprint = self._key(opened.header.get("jwk"))
        if thumbprint != jkt:
            raise InvalidProofError("the DPoP proof's key is not the one the token is bound to")
        verify(opened, key, what="DPoP proof", error=InvalidProofError)
        return self._check_claims(opened.claims, method, url, token_sha256)

    def _key(self, jwk: Any) -> tuple[Any, str]:
        """The proof's public key and its thumbprint; a client's key is imported once."""
        _require_public(jwk)
        text = orjson.dumps(jwk, option=orjson.OPT_SORT_KEYS).decode()
        found = self._keys.get(text)
        if found is None:
            key = _import(jwk)
            found = self._keys[text] = (key, key.thumbprint())
            if len(self._keys) > _KEY_CACHE_SIZE:
                self._keys.popitem(last=False)
        return found

    def _check_claims(
        self, claims: dict[str, Any], method: str, url: str, token_sha256: bytes
    ) -> Proof:
        if claims.get("htm") != method:
            raise InvalidProofError(f"the DPoP proof's htm must be {method}")
        htu = claims.get("htu")
        if not isinstance(htu, str) or _safe_normalise(htu) != normalise_htu(url):
            raise InvalidProofError(f"the DPoP proof's htu must be {normalise_htu(url)}")
        iat = claims.get("iat")
        if not isinstance(iat, int | float) or isinstance(iat, bool):
            raise InvalidProofError("the DPoP proof has no numeric iat")
        if abs(self._clock() - iat) > PROOF_WINDOW_S:
            raise InvalidProofError(f"the DPoP proof's iat is not within {PROOF_WINDOW_S} s of now")
        ath = base64.urlsafe_b64encode(token_sha256).rstrip(b"=").decode()
        if claims.get("ath") != ath:
            raise InvalidProofError("the DPoP proof's ath is not the hash of the access token")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not 0 < len(jti) <= 256:
            raise InvalidProofError("the DPoP proof needs a jti (1 to 256 characters)")
        return Proof(jti, float(iat))


def _require_public(jwk: Any) -> None:
    if not isinstance(jwk, dict):
        raise InvalidProofError("the DPoP proof's header has no jwk")
    if jwk.get("kty") not in _KEY_TYPES:
        raise InvalidProofError("the DPoP proof's jwk must be an RSA or EC public key")
    if _PRIVATE_MEMBERS & jwk.keys():
        raise InvalidProofError("the DPoP proof's jwk contains private key material")


def _import(jwk: dict[str, Any]) -> Any:
    try:
        return JWKRegistry.import_key(jwk)
    except (JoseError, ValueError, TypeError) as exc:
        name = type(exc).__name__
        raise InvalidProofError(f"the DPoP proof's jwk is not a valid key ({name})") from exc


def _safe_normalise(url: str) -> str | None:
    try:
        return normalise_htu(url)
    except ValueError:
        return None
