"""Pages for people: the nurse's live NEWS2 board and patient page, the citizen's own
measurements — server-rendered in Norwegian bokmål, logged in through the server.

The browser never holds an access token. The server runs the OpenID Connect login (PAR, PKCE,
DPoP-bound tokens under its own key; `api.web.oidc`), keeps the tokens in PostgreSQL
(`api.web.sessions`) and gives the browser an HttpOnly session cookie. Each page request makes
the same `Principal` the API makes of a token (`api.web.auth`) and reads through the same
access functions, so the rules and the access log are the API's.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import swagger_ui_bundle
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from api.auth.errors import AuthError, ForbiddenError, auth_error_response
from api.auth.middleware import is_page
from api.errors import note_refusal
from api.web import board, login, patient
from api.web.auth import CsrfError, LoginRequiredError
from api.web.oidc import LoginError, OidcClient
from api.web.templating import render
from ingestion.exceptions import InvalidReadingError
from ingestion.responses import invalid_response

__all__ = ["install_pages", "open_web", "serve_offline_docs"]

STATIC = Path(__file__).parent / "static"


def install_pages(app: FastAPI) -> None:
    """Add the pages, their assets and their error pages (``/dev/login`` only in development
    with the local issuer)."""
    app.include_router(login.router)
    app.include_router(board.router)
    app.include_router(patient.router)
    if login.dev_login_enabled(app.state.settings):
        app.include_router(login.dev_router)
    app.mount("/web/assets", StaticFiles(directory=STATIC), name="web-assets")
    _install_error_pages(app)


def open_web(app: FastAPI) -> httpx.AsyncClient:
    """The HTTP client of the logins (closed with the app)."""
    http = httpx.AsyncClient(timeout=10.0)
    app.state.oidc = OidcClient(http)
    return http


def serve_offline_docs(app: FastAPI) -> None:
    """``/docs`` with Swagger UI from the installed ``swagger-ui-bundle`` package (no CDN)."""
    app.mount(
        "/docs/assets", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="docs-assets"
    )

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="malestrom – API",
            swagger_js_url="/docs/assets/swagger-ui-bundle.js",
            swagger_css_url="/docs/assets/swagger-ui.css",
            swagger_favicon_url="/docs/assets/favicon-32x32.png",
        )


def _install_error_pages(app: FastAPI) -> None:
    """Pages answer with pages; the API's own answers (OperationOutcome) stay as they are."""

    @app.exception_handler(LoginRequiredError)
    async def login_required(request: Request, _exc: LoginRequiredError) -> Response:
        if request.method == "GET" and "text/event-stream" not in request.headers.get("accept", ""):
            return RedirectResponse(f"/web/?neste={request.url.path}", status_code=303)
        return _error(401, "Du er ikke logget inn", "Logg inn på nytt for å fortsette.")

    @app.exception_handler(CsrfError)
    async def csrf(_request: Request, _exc: CsrfError) -> Response:
        return _error(403, "Skjemaet er utløpt", "Last siden på nytt og prøv igjen.")

    @app.exception_handler(LoginError)
    async def login_failed(_request: Request, _exc: LoginError) -> Response:
        return _error(502, "Innloggingen mislyktes", "Identitetstjenesten svarte ikke som ventet.")

    @app.exception_handler(AuthError)
    async def refused(request: Request, exc: AuthError) -> Response:
        await note_refusal(request, exc)
        if not is_page(request.url.path):
            return auth_error_response(exc)
        if isinstance(exc, ForbiddenError):
            return _error(403, "Ingen tilgang", "Du har ikke tilgang til disse opplysningene.")
        return _error(401, "Du er ikke logget inn", "Logg inn på nytt for å fortsette.")

    @app.exception_handler(InvalidReadingError)
    async def invalid(request: Request, exc: InvalidReadingError) -> Response:
        if not is_page(request.url.path):
            return invalid_response(exc)
        status = {"not-found": 404, "conflict": 409}.get(exc.code, 400)
        message = {
            "conflict": "Varselet er allerede kvittert eller lukket.",
            "not-found": "Fant ikke det du ba om.",
        }.get(exc.code, "Forespørselen var ugyldig.")
        return _error(status, "Det gikk ikke", message)


def _error(status: int, title: str, message: str) -> Response:
    return render("error.html", status_code=status, title=title, message=message, caller=None)
