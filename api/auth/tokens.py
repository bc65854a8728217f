"""Access tokens (JWT, RFC 9068) from the trusted issuers: signature, header and claims.

Every check is explicit (joserfc's ``jwt.decode`` checks no claim by itself). A token whose
signature was verified once is remembered by its hash until it expires, so a client that
reuses its token pays for the signature check once; the claims are checked on every request.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from api.auth.errors import InvalidTokenError
from api.auth.jose import open_compact, verify
from api.auth.keys import JwksSource

__all__ = ["CLOCK_SKEW_S", "Issuer", "IssuerKind", "TokenVerifier", "VerifiedToken"]

CLOCK_SKEW_S = 5
_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt", "jwt"})
_CACHE_SIZE = 10_000


class IssuerKind(StrEnum):
    """Who an issuer's tokens speak for."""

    STAFF = "staff"  # HelseID: health personnel and systems
    CITIZEN = "citizen"  # ID-porten / Helsenorge: a person about their own data


@dataclass(frozen=True, slots=True)
class Issuer:
    """A trusted issuer: its exact ``iss``, where its keys are, and whom it speaks for."""

    name: str
    keys: JwksSource
    kinds: frozenset[IssuerKind]


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    """A token that passed every check, with its issuer and the SHA-256 of its text."""

    claims: dict[str, Any]
    issuer: Issuer
    sha256: bytes


class TokenVerifier:
    """Checks access tokens against the trusted issuers and the audience."""

    def __init__(
        self,
        issuers: list[Issuer],
        *,
        audience: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._issuers = {i.name: i for i in issuers}
        self._audience = audience
        self._clock = clock
        self._verified: OrderedDict[bytes, VerifiedToken] = OrderedDict()

    async def verify(self, token: str) -> VerifiedToken:
        """Verify ``token`` completely (its signature only the first time it is seen).

        Raises:
            InvalidTokenError: saying which check failed.
        """
        digest = hashlib.sha256(token.encode()).digest()
        known = self._verified.get(digest)
        if known is not None:
            self._check_claims(known.claims)
            return known
        opened = open_compact(token, what="access token", error=InvalidTokenError)
        typ = str(opened.header.get("typ", "")).lower()
        if typ not in _TOKEN_TYPES:
            raise InvalidTokenError(f"the access token's typ must be at+jwt or JWT, not {typ!r}")
        issuer = self._issuer_of(opened.claims)
        key = await issuer.keys.key(opened.header.get("kid"))
        verify(opened, key, what="access token", error=InvalidTokenError)
        self._check_claims(opened.claims)
        verified = VerifiedToken(opened.claims, issuer, digest)
        self._remember(verified)
        return verified

    def _issuer_of(self, claims: dict[str, Any]) -> Issuer:
        iss = claims.get("iss")
        issuer = self._issuers.get(iss) if isinstance(iss, str) else None
        if issuer is None:
            raise InvalidTokenError("the access token's iss is not a trusted issuer")
        return issuer

    def _check_claims(self, claims: dict[str, Any]) -> None:
        aud = claims.get("aud")
        if aud != self._audience and aud != [self._audience]:
            raise InvalidTokenError(f"the access token's aud must be exactly {self._audience!r}")
        now = self._clock()
        exp, nbf = claims.get("exp"), claims.get("nbf")
        if not _is_number(exp) or not isinstance(exp, int | float):
            raise InvalidTokenError("the access token has no numeric exp")
        if now > exp + CLOCK_SKEW_S:
            raise InvalidTokenError("the access token has expired")
        if nbf is not None and (not isinstance(nbf, int | float) or now < nbf - CLOCK_SKEW_S):
            raise InvalidTokenError("the access token is not valid yet (nbf)")
        cnf = claims.get("cnf")
        jkt = cnf.get("jkt") if isinstance(cnf, dict) else None
        if not isinstance(jkt, str) or not jkt:
            raise InvalidTokenError("the access token is not bound to a DPoP key (no cnf.jkt)")

    def _remember(self, verified: VerifiedToken) -> None:
        self._verified[verified.sha256] = verified
        if len(self._verified) > _CACHE_SIZE:
            self._verified.popitem(last=False)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
