"""The ASGI middleware that lets no request through without a valid DPoP-bound token, except
the few public paths (health, capability statement, API documentation) and the pages for
people (`api.web`), which authenticate by their server-side session instead: every page route
requires a session (tests/unit/test_web.py checks each one), and none of them is an API route."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from api.auth.authenticator import Authenticator, RequestFacts
from api.auth.errors import AuthError, auth_error_response
from ingestion.exceptions import UnavailableError
from ingestion.responses import unavailable_response

__all__ = ["PAGE_PREFIXES", "PUBLIC_PATHS", "AuthMiddleware", "is_page"]

PUBLIC_PATHS = frozenset(
    {"/healthz", "/fhir/metadata", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}
)
# Pages (session cookie), the offline documentation's assets, and in development only the local
# issuer's login pages; "/" redirects to the pages.
PAGE_PREFIXES = ("/web/", "/docs/assets/", "/dev/")


def is_page(path: str) -> bool:
    """True for a path that is not the API's: a page, a page asset or a development page."""
    return path == "/" or path.startswith(PAGE_PREFIXES)


class AuthMiddleware:
    """Authenticates every HTTP request to a non-public path; the principal goes to
    ``request.state.principal``."""

    def __init__(self, app: ASGIApp, *, public_url: str | None) -> None:
        self.app = app
        self._public_url = public_url.rstrip("/") if public_url else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path in PUBLIC_PATHS or is_page(path):
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
        # The path as sent (percent-encoded), as the client signed it in htu.
        raw = scope.get("raw_path")
        sent = raw.decode("latin-1") if raw else str(scope["path"])
        path = scope.get("root_path", "") + sent
        if self._public_url:
            return self._public_url + sent
        host = headers.get("host")
        if not host:
            server = scope.get("server") or ("localhost", None)
            host = f"{server[0]}:{server[1]}" if server[1] else server[0]
        return f"{scope.get('scheme', 'http')}://{host}{path}"
