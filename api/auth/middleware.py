"""The ASGI middleware that lets no request through without a valid DPoP-bound token, except
the few public paths (health, capability statement, API documentation)."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from api.auth.authenticator import Authenticator, RequestFacts
from api.auth.errors import AuthError, auth_error_response
from ingestion.exceptions import UnavailableError
from ingestion.responses import unavailable_response

__all__ = ["PUBLIC_PATHS", "AuthMiddleware"]

PUBLIC_PATHS = frozenset(
    {"/healthz", "/fhir/metadata", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}
)


class AuthMiddleware:
    """Authenticates every HTTP request to a non-public path; the principal goes to
    ``request.state.principal``."""

    def __init__(self, app: ASGIApp, *, public_url: str | None) -> None:
        self.app = app
        self._public_url = public_url.rstrip("/") if public_url else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        authenticator: Authenticator = scope["app"].state.authenticator
        headers = Headers(scope=scope)
        facts = RequestFacts(
            method=scope["method"],
            url=self._url(scope, headers),
            authorization=headers.get("authorization"),
            proofs=headers.getlist("dpop"),
        )
        try:
            principal = await authenticator.authenticate(facts)
        except AuthError as exc:
            await auth_error_response(exc)(scope, receive, send)
            return
        except UnavailableError as exc:
            await unavailable_response(exc)(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)

    def _url(self, scope: Scope, headers: Headers) -> str:
        path: str = scope.get("root_path", "") + scope["path"]
        if self._public_url:
            return self._public_url + str(scope["path"])
        host = headers.get("host")
        if not host:
            server = scope.get("server") or ("localhost", None)
            host = f"{server[0]}:{server[1]}" if server[1] else server[0]
        return f"{scope.get('scheme', 'http')}://{host}{path}"
