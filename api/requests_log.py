"""The request log of the API: one line per request with the method, the route's path
template (never the concrete path, which can hold an identity number), the status, the
duration and the correlation id. The correlation id is given back in a response header."""

from __future__ import annotations

import logging
import time
import uuid

from starlette.datastructures import Headers, MutableHeaders
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CORRELATION_HEADER", "RequestLog", "path_template"]

CORRELATION_HEADER = "correlation-id"
log = logging.getLogger("malestrom.requests")


class RequestLog:
    """ASGI middleware: a correlation id for every request, and its log line."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = Headers(scope=scope).get(CORRELATION_HEADER, "")
        correlation = given if 0 < len(given) <= 128 and given.isprintable() else str(uuid.uuid4())
        scope.setdefault("state", {})["correlation_id"] = correlation
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message).setdefault(CORRELATION_HEADER, correlation)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            template = path_template(scope)
            log.info(
                "%s %s %d %.1f ms %s",
                scope["method"],
                template,
                status,
                (time.perf_counter() - started) * 1000,
                correlation,
                extra={
                    "method": scope["method"],
                    "route": template,
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                    "correlation_id": correlation,
                },
            )


def path_template(scope: Scope) -> str:
    """The path template of the route the request was for (also when it was refused before
    routing), never the concrete path."""
    route = getattr(scope.get("route"), "path", None)
    if route:
        return str(route)
    app = scope["app"]
    patterns = getattr(app.state, "path_templates", None)
    if patterns is None:
        templates = sorted(app.openapi()["paths"], key=lambda t: (t.count("{"), -len(t)))
        patterns = app.state.path_templates = [(compile_path(t)[0], t) for t in templates]
    path = scope["path"]
    return next((t for pattern, t in patterns if pattern.match(path)), "(no route)")
