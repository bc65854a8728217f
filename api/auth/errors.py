"""Authentication and authorisation errors; each knows its HTTP answer."""

from __future__ import annotations

from starlette.responses import Response

from ingestion.exceptions import MalestromError
from ingestion.outcomes import Issue
from ingestion.responses import outcome_response

__all__ = [
    "ALGORITHMS",
    "AuthError",
    "ForbiddenError",
    "InvalidProofError",
    "InvalidTokenError",
    "auth_error_response",
]

# Asymmetric only: never "none", never an HMAC (a shared secret is no proof of who signed).
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")


class AuthError(MalestromError):
    """A request that may not proceed; ``status`` and ``challenge`` say how to answer."""

    status = 401
    error = "invalid_token"

    def __init__(self, message: str, *, scope: str | None = None) -> None:
        super().__init__(message)
        self.scope = scope

    @property
    def challenge(self) -> str | None:
        """The ``WWW-Authenticate`` value (RFC 9449 § 7.1), or None for a plain 403."""
        # A header value is Latin-1; a quoted string may not hold a quote or a backslash.
        text = str(self).replace("…", "...").replace("\\", "").replace('"', "'")
        description = "".join(c if " " <= c <= "~" else "?" for c in text)
        value = f'DPoP error="{self.error}", error_description="{description}"'
        if self.scope:
            value += f', scope="{self.scope}"'
        return value + f', algs="{" ".join(ALGORITHMS)}"'


class InvalidTokenError(AuthError):
    """The access token is missing, malformed, unsigned, expired or not for us."""


class InvalidProofError(AuthError):
    """The DPoP proof is missing or does not prove possession for this request."""

    error = "invalid_dpop_proof"


class ForbiddenError(AuthError):
    """The caller is known but may not do this (scope, organisation, person)."""

    status = 403
    error = "insufficient_scope"

    @property
    def challenge(self) -> str | None:
        return super().challenge if self.scope else None


def auth_error_response(exc: AuthError) -> Response:
    """The OperationOutcome answer to an `AuthError`, with its ``WWW-Authenticate``."""
    code = "login" if exc.status == 401 else "forbidden"
    headers = {"WWW-Authenticate": exc.challenge} if exc.challenge else {}
    return outcome_response(exc.status, [Issue("error", code, str(exc))], headers)
