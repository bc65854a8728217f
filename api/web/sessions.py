"""Server-side sessions of the pages (PostgreSQL): the browser holds a random id, the server
the access token, the DPoP key it is bound to and the CSRF token of its forms.

A session ends at logout, after ``idle`` without a request, at its absolute end, or when its
token expires, whichever comes first. A login under way is kept for ten minutes at most.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

__all__ = [
    "LOGIN_TTL",
    "Login",
    "Session",
    "create_session",
    "end_session",
    "load_session",
    "save_login",
    "take_login",
]

LOGIN_TTL = dt.timedelta(minutes=10)
_TOUCH_EVERY = dt.timedelta(seconds=30)  # last_seen is written at most this often


@dataclass(frozen=True, slots=True)
class Login:
    """What the callback needs of a login it did not start itself."""

    provider: str
    code_verifier: str
    nonce: str
    dpop_key: dict[str, Any]
    return_to: str


@dataclass(frozen=True, slots=True)
class Session:
    """A live session."""

    provider: str
    access_token: str
    dpop_key: dict[str, Any]
    csrf: str
    expires_at: dt.datetime


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode()).digest()


async def save_login(
    *, conn: AsyncConnection[Any], state: str, login: Login, now: dt.datetime
) -> None:
    """Keep a login under way until its callback (and forget the stale ones)."""
    await conn.execute("DELETE FROM web_logins WHERE created_at < %s", (now - LOGIN_TTL,))
    await conn.execute(
        "INSERT INTO web_logins (state_digest, provider, code_verifier, nonce, dpop_key,"
        " return_to, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (
            _digest(state),
            login.provider,
            login.code_verifier,
            login.nonce,
            Jsonb(login.dpop_key),
            login.return_to,
            now,
        ),
    )


async def take_login(*, conn: AsyncConnection[Any], state: str, now: dt.datetime) -> Login | None:
    """The login of ``state``, once (a replayed callback finds nothing)."""
    cur = await conn.execute(
        "DELETE FROM web_logins WHERE state_digest = %s AND created_at >= %s"
        " RETURNING provider, code_verifier, nonce, dpop_key, return_to",
        (_digest(state), now - LOGIN_TTL),
    )
    row = await cur.fetchone()
    return Login(*row) if row else None


async def create_session(
    *,
    conn: AsyncConnection[Any],
    provider: str,
    access_token: str,
    dpop_key: dict[str, Any],
    expires_at: dt.datetime,
    now: dt.datetime,
) -> str:
    """Start a session; return the cookie value (never stored: only its digest is)."""
    await conn.execute("DELETE FROM web_sessions WHERE expires_at < %s", (now,))
    cookie = secrets.token_urlsafe(32)
    await conn.execute(
        "INSERT INTO web_sessions (id_digest, provider, access_token, dpop_key, csrf,"
        " created_at, last_seen, expires_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        (
            _digest(cookie),
            provider,
            access_token,
            Jsonb(dpop_key),
            secrets.token_urlsafe(32),
            now,
            now,
            expires_at,
        ),
    )
    return cookie


async def load_session(
    *, conn: AsyncConnection[Any], cookie: str, now: dt.datetime, idle: dt.timedelta
) -> Session | None:
    """The live session of ``cookie``, its idle clock reset; None when over or unknown."""
    cur = await conn.execute(
        "SELECT provider, access_token, dpop_key, csrf, expires_at, last_seen FROM web_sessions"
        " WHERE id_digest = %s",
        (_digest(cookie),),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    provider, token, key, csrf, expires_at, last_seen = row
    if now >= expires_at or now - last_seen >= idle:
        await end_session(conn=conn, cookie=cookie)
        return None
    if now - last_seen >= _TOUCH_EVERY:
        await conn.execute(
            "UPDATE web_sessions SET last_seen = %s WHERE id_digest = %s", (now, _digest(cookie))
        )
    return Session(provider, token, key, csrf, expires_at)


async def end_session(*, conn: AsyncConnection[Any], cookie: str) -> None:
    """End the session of ``cookie`` (logout, timeout)."""
    await conn.execute("DELETE FROM web_sessions WHERE id_digest = %s", (_digest(cookie),))
