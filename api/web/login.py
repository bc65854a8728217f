"""Logging in and out: the start page, the login with each provider, the callback, logout,
and — only in development, with the local issuer — ``/dev/login``, which picks the person in
advance and then runs the very same flow."""

from __future__ import annotations

import datetime as dt
from typing import Annotated
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Form, Query, Request
from starlette.responses import RedirectResponse, Response

from api.auth.principals import Kind
from api.settings import ApiSettings, Environment, is_dev_issuer
from api.web.auth import (
    CallerDep,
    LoginRequiredError,
    WebCaller,
    check_csrf,
    cookie_name,
    current_caller,
    secure_cookies,
)
from api.web.oidc import LoginError, OidcClient, Provider, providers_from
from api.web.sessions import Login, create_session, end_session, save_login, take_login
from api.web.templating import render

__all__ = ["CALLBACK_PATH", "dev_router", "router", "start_page"]

CALLBACK_PATH = "/web/innlogging/tilbake"
_LOGIN_COOKIE = "malestrom_login"  # binds the callback to the browser that started the login
_WHO = {"helsepersonell": "staff", "innbygger": "citizen"}

router = APIRouter(include_in_schema=False)
dev_router = APIRouter(include_in_schema=False)


def start_page(caller: WebCaller) -> str:
    """Where a person starts: the board for staff, their own measurements for a citizen."""
    return "/web/mine-malinger" if caller.principal.kind is Kind.CITIZEN else "/web/tavle"


@router.get("/")
async def root() -> Response:
    """The pages start at /web/."""
    return RedirectResponse("/web/", status_code=303)


@router.get("/web/")
async def welcome(request: Request, neste: str = "") -> Response:
    """The start page: a logged-in person goes on to their page, anyone else chooses a login."""
    try:
        caller = await current_caller(request)
    except LoginRequiredError:
        providers = providers_from(request.app.state.settings)
        return render("login.html", providers=providers, neste=_local(neste), caller=None)
    return RedirectResponse(_local(neste) or start_page(caller), status_code=303)


@router.get("/web/logg-inn/{who}")
async def log_in(request: Request, who: str, neste: str = "") -> Response:
    """Start a login with HelseID (``helsepersonell``) or ID-porten (``innbygger``)."""
    provider = providers_from(request.app.state.settings).get(_WHO.get(who, ""))
    if provider is None:
        return render(
            "error.html",
            status_code=404,
            title="Fant ikke siden",
            message="Denne innloggingen er ikke satt opp.",
            caller=None,
        )
    return await _begin(request, provider, neste, {})


@router.get(CALLBACK_PATH)
async def callback(request: Request, state: str = "", code: str = "", error: str = "") -> Response:
    """The provider sends the browser back here with a code; the session starts."""
    now = dt.datetime.now(dt.UTC)
    if error or not code or request.cookies.get(_LOGIN_COOKIE) != state:
        return _failed("Innloggingen ble avbrutt eller kom fra en annen nettleser.")
    async with request.app.state.pool.connection() as conn:
        login = await take_login(conn=conn, state=state, now=now)
    provider = providers_from(request.app.state.settings).get(login.provider) if login else None
    if login is None or provider is None:
        return _failed("Innloggingen er utløpt. Prøv igjen.")
    try:
        token, lifetime = await _client(request).redeem(
            provider,
            code=code,
            redirect_uri=_redirect_uri(request),
            code_verifier=login.code_verifier,
            nonce=login.nonce,
            dpop_key=login.dpop_key,
        )
    except LoginError:
        return _failed("Identitetstjenesten godtok ikke innloggingen.")
    return await _start_session(request, login, token, lifetime, now)


@router.post("/web/logg-ut")
async def log_out(
    caller: CallerDep, request: Request, csrf: Annotated[str, Form()] = ""
) -> Response:
    """End the session (a form with the CSRF token) and forget the cookie."""
    check_csrf(request, caller, csrf)
    secure = secure_cookies(request.app.state.settings, request)
    cookie = request.cookies.get(cookie_name(secure), "")
    async with request.app.state.pool.connection() as conn:
        await end_session(conn=conn, cookie=cookie)
    response = RedirectResponse("/web/?utlogget=1", status_code=303)
    response.delete_cookie(
        cookie_name(secure), path="/", secure=secure, httponly=True, samesite="lax"
    )
    return response


@dev_router.get("/dev/login")
async def dev_login(
    request: Request,
    role: Annotated[str, Query(pattern="^(nurse|clinician|citizen)$")],
    org: str = "",
    pid: str = "",
) -> Response:
    """Development only: log in as a synthetic nurse (``org``, default the simulator's), a
    clinician or a citizen (``pid``) through the local issuer, skipping its picker page."""
    provider = providers_from(request.app.state.settings).get(
        "citizen" if role == "citizen" else "staff"
    )
    if provider is None or not is_dev_issuer(provider.authority):
        return render(
            "error.html", status_code=404, title="Fant ikke siden", message="", caller=None
        )
    hints = {"dev_role": role, "dev_org": org, "dev_pid": pid}
    return await _begin(request, provider, "", {k: v for k, v in hints.items() if v})


def dev_login_enabled(settings: ApiSettings) -> bool:
    """``/dev/…`` exists only in development and only with the local issuer as the provider."""
    providers = providers_from(settings).values()
    return settings.env is Environment.DEVELOPMENT and any(
        is_dev_issuer(p.authority) for p in providers
    )


async def _begin(
    request: Request, provider: Provider, neste: str, extra: dict[str, str]
) -> Response:
    pending = await _client(request).begin(
        provider, redirect_uri=_redirect_uri(request), extra=extra
    )
    login = Login(
        provider.name, pending.code_verifier, pending.nonce, pending.dpop_key, _local(neste)
    )
    async with request.app.state.pool.connection() as conn:
        await save_login(conn=conn, state=pending.state, login=login, now=dt.datetime.now(dt.UTC))
    response = RedirectResponse(pending.authorize_url, status_code=303)
    secure = secure_cookies(request.app.state.settings, request)
    response.set_cookie(
        _LOGIN_COOKIE,
        pending.state,
        max_age=600,
        path=CALLBACK_PATH,
        secure=secure,
        httponly=True,
        samesite="lax",
    )
    return response


async def _start_session(
    request: Request, login: Login, token: str, lifetime: int, now: dt.datetime
) -> Response:
    settings: ApiSettings = request.app.state.settings
    limit = dt.timedelta(minutes=settings.session_absolute_minutes)
    expires = now + min(limit, dt.timedelta(seconds=lifetime))
    async with request.app.state.pool.connection() as conn:
        cookie = await create_session(
            conn=conn,
            provider=login.provider,
            access_token=token,
            dpop_key=login.dpop_key,
            expires_at=expires,
            now=now,
        )
    target = login.return_to or (
        "/web/mine-malinger" if login.provider == "citizen" else "/web/tavle"
    )
    response = RedirectResponse(target, status_code=303)
    secure = secure_cookies(settings, request)
    response.set_cookie(
        cookie_name(secure),
        cookie,
        max_age=int((expires - now).total_seconds()),
        path="/",
        secure=secure,
        httponly=True,
        samesite="lax",
    )
    response.delete_cookie(
        _LOGIN_COOKIE, path=CALLBACK_PATH, secure=secure, httponly=True, samesite="lax"
    )
    return response


def _client(request: Request) -> OidcClient:
    client: OidcClient = request.app.state.oidc
    return client


def _redirect_uri(request: Request) -> str:
    settings: ApiSettings = request.app.state.settings
    base = (settings.public_url or str(request.base_url)).rstrip("/")
    return base + CALLBACK_PATH


def _local(target: str) -> str:
    """Only a path of this site may be a return target (no open redirect)."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/web/") or "\\" in target:
        return ""
    return quote(target, safe="/?=&-_.~%")


def _failed(message: str) -> Response:
    return render(
        "error.html", status_code=400, title="Innloggingen mislyktes", message=message, caller=None
    )
