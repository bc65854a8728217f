"""Who is behind a page request: the session cookie → the stored token → the same `Principal`
the API would make of it (verified by the same `TokenVerifier`, so scopes, organisations and
care relationships work identically). And the CSRF check of every form that changes something.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from joserfc.jwk import ECKey

from api.auth.authenticator import Authenticator
from api.auth.errors import AuthError
from api.auth.principals import Principal
from api.settings import ApiSettings
from api.web.sessions import Session, end_session, load_session

__all__ = [
    "CallerDep",
    "CsrfError",
    "LoginRequiredError",
    "WebCaller",
    "check_csrf",
    "cookie_name",
    "current_caller",
    "secure_cookies",
]


class LoginRequiredError(Exception):
    """No live session: the page sends the browser to log in."""


class CsrfError(Exception):
    """A form without this session's CSRF token, or from another origin."""


@dataclass(frozen=True, slots=True)
class WebCaller:
    """The person behind a page request."""

    principal: Principal
    session: Session


def secure_cookies(settings: ApiSettings, request: Request) -> bool:
    """Secure cookies whenever the pages are served over https."""
    public = settings.public_url or str(request.base_url)
    return public.startswith("https://")


def cookie_name(secure: bool) -> str:
    """``__Host-`` prefixed over https (Secure, Path=/, no Domain), plain over http."""
    return "__Host-malestrom" if secure else "malestrom_session"


async def current_caller(request: Request) -> WebCaller:
    """The caller of a page (a dependency).

    Raises:
        LoginRequiredError: no cookie, an ended session, or a token that no longer verifies.
    """
    settings: ApiSettings = request.app.state.settings
    cookie = request.cookies.get(cookie_name(secure_cookies(settings, request)))
    if not cookie:
        raise LoginRequiredError
    now = dt.datetime.now(dt.UTC)
    async with request.app.state.pool.connection() as conn:
        session = await load_session(
            conn=conn,
            cookie=cookie,
            now=now,
            idle=dt.timedelta(minutes=settings.session_idle_minutes),
        )
        if session is None:
            raise LoginRequiredError
        authenticator: Authenticator = request.app.state.authenticator
        try:
            principal, jkt = await authenticator.principal_of_token(session.access_token)
        except AuthError as exc:
            await end_session(conn=conn, cookie=cookie)
            raise LoginRequiredError from exc
    if jkt != ECKey.import_key(session.dpop_key).thumbprint():
        raise LoginRequiredError  # a token not bound to this session's key is not this session's
    return WebCaller(principal, session)


def check_csrf(request: Request, caller: WebCaller, token: str | None) -> None:
    """Refuse a state-changing form without the session's token or from another origin.

    Raises:
        CsrfError: the token is missing or wrong, or Origin names another site.
    """
    origin = request.headers.get("origin")
    settings: ApiSettings = request.app.state.settings
    own = (settings.public_url or str(request.base_url)).rstrip("/")
    if origin is not None and origin.rstrip("/") != own:
        raise CsrfError
    if not token or not secrets.compare_digest(token, caller.session.csrf):
        raise CsrfError


CallerDep = Annotated[WebCaller, Depends(current_caller)]
