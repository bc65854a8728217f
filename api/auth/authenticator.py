"""From a request's ``Authorization`` and ``DPoP`` headers to its `Principal`."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from api.auth.dpop import ProofVerifier
from api.auth.errors import InvalidProofError, InvalidTokenError
from api.auth.keys import JwksSource
from api.auth.principals import Principal, principal_from
from api.auth.replay import ReplayStore
from api.auth.tokens import Issuer, IssuerKind, TokenVerifier, VerifiedToken
from api.settings import ApiSettings

__all__ = ["Authenticator", "RequestFacts", "build_authenticator"]

_CACHE_SIZE = 10_000


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """What the checks need of a request."""

    method: str
    url: str  # the public URL of the request, without query
    authorization: str | None
    proofs: list[str]  # every DPoP header value


class Authenticator:
    """Runs the token, proof and replay checks, in that order, and makes the principal."""

    def __init__(
        self,
        tokens: TokenVerifier,
        proofs: ProofVerifier,
        replay: ReplayStore,
        settings: ApiSettings,
    ) -> None:
        self._tokens = tokens
        self._proofs = proofs
        self._replay = replay
        self._settings = settings
        self._principals: OrderedDict[bytes, Principal] = OrderedDict()

    async def authenticate(self, request: RequestFacts) -> Principal:
        """Authenticate one request.

        Raises:
            AuthError: which check failed (401 or 403).
            UnavailableError: the replay cache cannot be reached.
        """
        token = _dpop_token(request.authorization)
        verified = await self._tokens.verify(token)
        principal = self._principal(verified)
        if len(request.proofs) != 1:
            raise InvalidProofError(
                "send exactly one DPoP header with a proof (RFC 9449)"
                if request.proofs
                else "the request has no DPoP proof header"
            )
        jkt = verified.claims["cnf"]["jkt"]
        proof = self._proofs.verify(
            request.proofs[0],
            method=request.method,
            url=request.url,
            token_sha256=verified.sha256,
            jkt=jkt,
        )
        await self._replay.claim(jkt=jkt, jti=proof.jti, iat=proof.iat)
        return principal

    async def principal_of_token(self, token: str) -> tuple[Principal, str]:
        """The principal of a token the server holds itself (a page session), and the
        thumbprint of the key it is bound to. No proof: the key never left the server.

        Raises:
            AuthError: the token fails a check (expired, untrusted, no malestrom scope).
        """
        verified = await self._tokens.verify(token)
        return self._principal(verified), str(verified.claims["cnf"]["jkt"])

    def _principal(self, verified: VerifiedToken) -> Principal:
        """The token's principal, made once per token (bounded memory)."""
        principal = self._principals.get(verified.sha256)
        if principal is None:
            principal = principal_from(verified, mode=self._settings.identity_mode)
            self._principals[verified.sha256] = principal
            if len(self._principals) > _CACHE_SIZE:
                self._principals.popitem(last=False)
        return principal


def _dpop_token(authorization: str | None) -> str:
    if not authorization:
        raise InvalidTokenError("the request has no access token (Authorization: DPoP …)")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() == "bearer":
        raise InvalidTokenError("tokens must be DPoP-bound: use Authorization: DPoP, not Bearer")
    if scheme.lower() != "dpop" or not token.strip():
        raise InvalidTokenError("the Authorization header must be 'DPoP <access token>'")
    return token.strip()


def build_authenticator(settings: ApiSettings, replay: ReplayStore) -> Authenticator:
    """The authenticator for the configured issuers (none configured: every token fails)."""
    issuers: dict[str, tuple[str, set[IssuerKind]]] = {}
    for name, jwks, kind in (
        (settings.helseid_issuer, settings.helseid_jwks, IssuerKind.STAFF),
        (settings.citizen_issuer, settings.citizen_jwks, IssuerKind.CITIZEN),
    ):
        if name and jwks:
            issuers.setdefault(name, (jwks, set()))[1].add(kind)
    verifier = TokenVerifier(
        [Issuer(n, JwksSource(j), frozenset(k)) for n, (j, k) in issuers.items()],
        audience=settings.audience,
    )
    return Authenticator(verifier, ProofVerifier(), replay, settings)
