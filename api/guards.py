"""Input that no endpoint may ever see, refused before routing with a 4xx OperationOutcome:
bodies over the size limit (413), NUL characters — which PostgreSQL cannot store — in the
path, a query parameter or a JSON body (400, naming where), and FHIR requests for a format
other than JSON (406).

A body is read at most once here, up to the limit, and handed on unchanged.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, unquote

import orjson
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ingestion.outcomes import Issue
from ingestion.responses import outcome_response

__all__ = ["MAX_BODY_BYTES", "RequestGuard", "nul_path"]

MAX_BODY_BYTES = 1024 * 1024
_NUL_ESCAPE = b"\\u0000"


class RequestGuard:
    """ASGI middleware: size limits and NUL bytes."""

    def __init__(self, app: ASGIApp, *, max_body: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self._max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problem = _in_url(scope) or _format_of(scope)
        if problem is None:
            declared = Headers(scope=scope).get("content-length", "")
            if declared.isdigit() and int(declared) > self._max_body:
                problem = (413, Issue("error", "too-costly", self._too_large(), ""))
        if problem is not None:
            await outcome_response(problem[0], [problem[1]])(scope, receive, send)
            return
        body, more = await _read(receive, self._max_body)
        if more:
            await outcome_response(413, [Issue("error", "too-costly", self._too_large())])(
                scope, receive, send
            )
            return
        if _NUL_ESCAPE in body or b"\x00" in body:
            where = nul_path(body)
            issue = Issue("error", "invalid", f"{where} contains a NUL character", where)
            await outcome_response(400, [issue])(scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)

    def _too_large(self) -> str:
        return f"the body is larger than {self._max_body} bytes; send less at a time"


# What a FHIR client may ask for and get: JSON, in any of its FHIR names.
_JSON_FORMATS = frozenset(
    {"json", "application/json", "application/fhir+json", "application/json+fhir"}
)
_ANY = frozenset({"*/*", "application/*"})


def _format_of(scope: Scope) -> tuple[int, Issue] | None:
    """406 for a FHIR request that asks for a format other than JSON (``_format`` or
    ``Accept``), as FHIR asks of a server that cannot give it."""
    if not scope["path"].startswith("/fhir"):
        return None
    query = scope.get("query_string", b"").decode("latin-1")
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name == "_format" and value.split(";")[0].strip().lower() not in _JSON_FORMATS:
            text = "this server answers in FHIR JSON only: _format=json, or leave _format out"
            return 406, Issue("error", "not-supported", text, "_format")
    accept = Headers(scope=scope).get("accept", "").strip()
    if accept:
        ranges = {part.split(";")[0].strip().lower() for part in accept.split(",")}
        if not ranges & (_JSON_FORMATS | _ANY):
            text = "this server answers in application/fhir+json only; ask for it in Accept"
            return 406, Issue("error", "not-supported", text, "Accept")
    return None


def _in_url(scope: Scope) -> tuple[int, Issue] | None:
    if "\x00" in scope["path"] or "%00" in scope.get("raw_path", b"").decode("latin-1"):
        return 400, Issue("error", "invalid", "the path contains a NUL character", "path")
    query = scope.get("query_string", b"").decode("latin-1")
    if "%00" not in query and "\x00" not in query:
        return None
    for name, value in parse_qsl(query, keep_blank_values=True):
        if "\x00" in name or "\x00" in value:
            shown = unquote(name).replace("\x00", "")
            return 400, Issue("error", "invalid", f"{shown} contains a NUL character", shown)
    return 400, Issue("error", "invalid", "the query contains a NUL character", "query")


async def _read(receive: Receive, limit: int) -> tuple[bytes, bool]:
    """The whole body, or what came before it passed ``limit`` (and True)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), False
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return b"", True
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), False


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def again() -> Message:
        nonlocal sent
        if sent:
            return await receive()  # after the body: disconnects, for streaming responses
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return again


def nul_path(body: bytes) -> str:
    """Where in a JSON body the first NUL character is (``patient.value``), else ``body``."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return "body"
    found = _find_nul(document, "")
    return found or "body"


def _find_nul(node: Any, path: str) -> str | None:
    if isinstance(node, str):
        return path or "body" if "\x00" in node else None
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{path}.{key}" if path else str(key)
            if "\x00" in str(key):
                return here
            if (found := _find_nul(value, here)) is not None:
                return found
    if isinstance(node, list):
        for index, value in enumerate(node):
            if (found := _find_nul(value, f"{path}[{index}]")) is not None:
                return found
    return None
